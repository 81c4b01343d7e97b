"""Mandrill's POST /api/1.0/messages/send.json, as documented: the key in the JSON body,
a status per recipient (sent, queued, rejected with reject_reason, invalid), and
errors as HTTP 500 with a JSON name (Invalid_Key, ValidationError, GeneralError).
Merge tags (`*|NAME|*`) are evaluated from global_merge_vars and merge_vars unless the
message says `"merge": false`; unknown ones render empty.

POST /api/1.0/messages/search.json searches the messages it took, checked against the
official OpenAPI definition (Mailchimp Transactional 1.4.0): only its body fields; `limit`
an integer from 1 to 1,000 (100 by default); `date_from`/`date_to` dates (YYYY-MM-DD), the
last 7 days without them. `query` is Lucene's; this double plays terms and quoted phrases
joined by OR, each matched against every indexed field (recipient, sender, tags, state, and
the metadata fields the account indexes), and refuses other syntax rather than guess.
Results are newest first, their metadata only the indexed fields. POST /metadata/list.json
gives those fields: `state["indexed"]`, name -> state (active, index, delete)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import formataddr
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "md-test-key"
SEND = "/api/1.0/messages/send.json"
MERGE_TAG = re.compile(r"\*\|([A-Za-z0-9_:]+)\|\*")
SEARCH_FIELDS = {"key", "query", "date_from", "date_to", "tags", "senders", "api_keys", "limit"}
"""The body of messages/search in the official OpenAPI definition."""
TERM = re.compile(r'"([^"]*)"|([^\s"():*?]+)')


def _merged(text: str, message: dict[str, Any], email: str) -> str:
    """`text` with Mandrill's merge tags filled for `email`, unless merging is off."""
    if message.get("merge") is False:
        return text
    values = {v["name"].upper(): str(v["content"]) for v in message.get("global_merge_vars", [])}
    for rcpt in message.get("merge_vars", []):
        if rcpt.get("rcpt") == email:
            values.update({v["name"].upper(): str(v["content"]) for v in rcpt.get("vars", [])})
    return MERGE_TAG.sub(lambda m: values.get(m.group(1).upper(), ""), text)


def _error(name: str, message: str, code: int = -1) -> Response:
    return JSONResponse({"status": "error", "code": code, "name": name, "message": message}, 500)


def mandrill(
    key: str = KEY,
    rejects: dict[str, str] | None = None,
    queued: bool = False,
    queued_reason: str | None = None,
) -> Service:
    """`rejects`: address -> reject_reason for addresses on Mandrill's rejection list
    (or "*" for every address: `unsigned` for a sending domain without DKIM/SPF).
    `queued_reason` (e.g. account-suspended): every message is queued for it and held.
    A test may change the rejection list while the service runs: `state["rejects"]`."""
    rejects = {} if rejects is None else rejects

    async def answer(service: Service, r: Received) -> Response:
        if r.method != "POST" or r.path not in (SEND, *CALLS):
            return _error("Unknown_Method", "Unknown method", -2)
        try:
            body = r.json()
        except ValueError:
            return _error("ValidationError", "You must specify a key value")
        if body.get("key") != key:
            return _error("Invalid_Key", "Invalid API key")
        if (call := CALLS.get(r.path)) is not None:
            return call(service, body)
        message = body.get("message") or {}
        if not message.get("from_email") or not message.get("to"):
            return _error("ValidationError", 'Validation error: {"message":{"to":"required"}}')
        results = []
        for to in message["to"]:
            email = to["email"]
            if "@" not in email:
                results.append({"email": email, "status": "invalid", "_id": uuid.uuid4().hex})
            elif email in rejects or "*" in rejects:
                results.append(
                    {
                        "email": email,
                        "status": "rejected",
                        "reject_reason": rejects.get(email) or rejects["*"],
                        "_id": uuid.uuid4().hex,
                    }
                )
            elif queued_reason:
                results.append(
                    {
                        "email": email,
                        "status": "queued",
                        "queued_reason": queued_reason,
                        "_id": uuid.uuid4().hex,
                    }
                )
            else:
                results.append(
                    {
                        "email": email,
                        "status": "queued" if queued else "sent",
                        "_id": uuid.uuid4().hex,
                    }
                )
        if not getattr(r, "scripted_failure", False):
            service.state["messages"] += [
                _searchable(message, answer) for answer in results if answer["status"] != "invalid"
            ]
        return JSONResponse(results)

    def render(r: Received) -> list[Delivered]:
        if r.path != SEND:
            return []  # a search or a listing: nothing is sent
        m = r.json()["message"]
        return [
            Delivered(
                formataddr((to.get("name", ""), to["email"])),
                _merged(m["subject"], m, to["email"]),
                _merged(m["html"], m, to["email"]),
                _merged(m["text"], m, to["email"]),
                dict(m.get("headers", {})),
                dict(m.get("metadata", {})),
            )
            for to in m["to"]
            if "@" in to["email"]
            and to["email"] not in rejects
            and "*" not in rejects
            and not queued_reason
        ]

    service = Service(answer, render)
    service.state["rejects"] = rejects
    service.state["messages"] = []
    """What the search finds: one per recipient taken (a test removes those it calls lost)."""
    service.state["indexed"] = {"send_id": "active"}
    return service


def _searchable(message: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A recipient's message as messages/search gives it (with all its metadata: the
    unindexed fields are left out when it is found)."""
    return {
        "ts": int(time.time()),
        "_id": answer["_id"],
        "sender": message["from_email"],
        "template": None,
        "subject": message.get("subject", ""),
        "email": answer["email"],
        "tags": list(message.get("tags", [])),
        "opens": 0,
        "opens_detail": [],
        "clicks": 0,
        "clicks_detail": [],
        "state": answer["status"],
        "metadata": dict(message.get("metadata", {})),
    }


def _day(value: Any, default: date) -> date:
    if value is None:
        return default
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    return date.fromisoformat(value)


def _search(service: Service, body: dict[str, Any]) -> Response:
    if unknown := sorted(set(body) - SEARCH_FIELDS):
        return _error("ValidationError", f"Validation error: unknown field {unknown[0]}")
    limit = body.get("limit", 100)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        return _error("ValidationError", "Validation error: limit must be from 1 to 1000")
    today = datetime.now(UTC).date()
    try:
        first = _day(body.get("date_from"), today - timedelta(days=7))
        last = _day(body.get("date_to"), today)
    except ValueError as exc:
        return _error("ValidationError", f"Validation error: {exc}")
    query = str(body.get("query", "*"))
    terms = [t.strip() for t in query.split(" OR ")]
    if query != "*" and not all(
        (found := TERM.fullmatch(t)) and (found.group(1) or found.group(2)) for t in terms
    ):
        return _error(
            "ValidationError", f"the local Mandrill plays only terms joined by OR: {query}"
        )
    wanted = {t.strip('"') for t in terms}
    indexed = {name for name, state in service.state["indexed"].items() if state == "active"}
    found = []
    for message in reversed(service.state["messages"]):
        day = datetime.fromtimestamp(message["ts"], UTC).date()
        metadata = {k: v for k, v in message["metadata"].items() if k in indexed}
        fields = {message["email"], message["sender"], message["state"], *message["tags"]}
        if first <= day <= last and (query == "*" or wanted & (fields | set(metadata.values()))):
            found.append({**message, "metadata": metadata})
    return JSONResponse(found[:limit])


def _metadata(service: Service, body: dict[str, Any]) -> Response:
    return JSONResponse(
        [
            {"name": name, "state": state, "view_template": ""}
            for name, state in service.state["indexed"].items()
        ]
    )


CALLS: dict[str, Callable[[Service, dict[str, Any]], Response]] = {
    "/api/1.0/messages/search.json": _search,
    "/api/1.0/metadata/list.json": _metadata,
}
