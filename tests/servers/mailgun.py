"""Mailgun's POST /v3/{domain}/messages, as documented: basic auth api:KEY, form fields,
at most 1,000 recipients, recipient-variables for batches, %recipient.KEY% filled per recipient.

GET /v3/{domain}/events is its Events API over the messages it took (one `accepted` event per
recipient, its v: variables as `user-variables`), checked against Mailgun's OpenAPI definition:
only its query parameters; `begin`/`end` in epoch seconds or RFC 2822; `ascending` yes or no,
required without `end` and agreeing with it; `limit` at most 300 (100 by default). Each page
comes with `paging.next` and `paging.previous` URLs (/v3/{domain}/events/<token>), on Mailgun's
own host as its docs show them: a client that followed them blindly would leave the test (and
take the key along). Past the last event, next gives an empty page. Filters: `event` and
`recipient` (terms joined by OR).
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.servers.scripted import Delivered, Received, Service, substitute

KEY = "key-test-mailgun"
DOMAIN = "mg.example.org"
EVENTS = re.compile(r"/v3/([^/]+)/events(?:/([A-Za-z0-9_=-]+))?")
EVENT_PARAMETERS = {
    *("begin", "end", "ascending", "limit", "event", "list", "attachment", "from"),
    *("message-id", "subject", "to", "size", "recipient", "recipients", "tags", "severity"),
}
"""The query parameters of GET /v3/{domain_name}/events in Mailgun's OpenAPI definition."""
FILTERS = {"event", "recipient"}
"""The filters this double applies; it refuses the others rather than ignore them."""


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"message": message}, status)


def mailgun(domain: str = DOMAIN, key: str = KEY) -> Service:
    async def answer(service: Service, r: Received) -> Response:
        expected = "Basic " + base64.b64encode(f"api:{key}".encode()).decode()
        if r.headers.get("authorization") != expected:
            return PlainTextResponse("Forbidden", 401)
        if r.method == "GET" and (found := EVENTS.fullmatch(r.path)):
            if found.group(1) != domain:
                return _error(f"Domain not found: {found.group(1)}", 404)
            return _events(service, r, found.group(2))
        if r.method != "POST" or not r.path.startswith("/v3/") or not r.path.endswith("/messages"):
            return PlainTextResponse(
                "Mailgun Magnificent API", 200
            )  # what Mailgun says to wrong paths
        if r.path != f"/v3/{domain}/messages":
            return _error(f"Domain not found: {r.path.split('/')[2]}", 404)
        if not r.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error("expected multipart/form-data")
        to = r.fields("to")
        if not r.fields("from") or not to or not r.fields("subject"):
            return _error("'from', 'to' and 'subject' parameters are required")
        if not (r.fields("text") or r.fields("html")):
            return _error("Need at least one of 'text' or 'html' parameters specified")
        if len(to) > 1000:
            return _error("Too many recipients: at most 1000 recipients are allowed per message")
        if len(to) > 1:
            try:
                variables = json.loads(r.field("recipient-variables"))
            except (StopIteration, ValueError):
                return _error(
                    "a batch without recipient-variables would show every recipient the whole To list"
                )
            missing = [t for t in to if _address(t) not in variables]
            if missing:
                return _error(f"recipient-variables lack {missing[0]}")
        return JSONResponse(
            {"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."}
        )

    def render(r: Received) -> list[Delivered]:
        variables = json.loads(dict(r.form).get("recipient-variables", "{}"))
        copies = []
        for to in r.fields("to"):
            own = variables.get(_address(to), {})

            def fill(text: str, own: dict[str, str] = own) -> str:
                return substitute(text, r"%recipient\.([^%]+)%", own)

            headers = {k[2:]: fill(v) for k, v in r.form if k.startswith("h:")}
            metadata = {k[2:]: fill(v) for k, v in r.form if k.startswith("v:")}
            copies.append(
                Delivered(
                    to,
                    fill(r.field("subject")),
                    fill(r.field("html")),
                    fill(r.field("text")),
                    headers,
                    metadata,
                )
            )
        return copies

    return Service(answer, render)


def _events(service: Service, r: Received, token: str | None) -> Response:
    """A page of `accepted` events: the first of a query, or the one a paging token points at."""
    if token is None:
        query, offset = r.query, 0
        unknown = sorted({k for k, _ in query} - EVENT_PARAMETERS)
        if unknown:
            return _error(f"unknown parameter: {unknown[0]}")
        unapplied = sorted({k for k, _ in query} - FILTERS - {"begin", "end", "ascending", "limit"})
        if unapplied:
            return _error(f"filter {unapplied[0]} is not played by the local Mailgun")
    else:
        query, offset = json.loads(base64.urlsafe_b64decode(token))
        query = [tuple(pair) for pair in query]
    given = dict(query)
    try:
        limit = int(given.get("limit", 100))
        begin = _time(given["begin"]) if "begin" in given else time.time()
        end = _time(given["end"]) if "end" in given else None
    except ValueError as exc:
        return _error(str(exc))
    if not 0 < limit <= 300:
        return _error("limit: the number of entries to return is at most 300")
    ascending = given.get("ascending")
    if ascending not in (None, "yes", "no"):
        return _error("ascending: either yes or no")
    if end is None and ascending is None:
        return _error("ascending must be provided if the range end time is not specified")
    if end is not None and ascending is not None and (end >= begin) != (ascending == "yes"):
        return _error("the time range and ascending disagree")
    up = ascending == "yes" if end is None else end >= begin
    stop = end if end is not None else (float("inf") if up else 0.0)
    low, high = (begin, stop) if up else (stop, begin)
    chosen = [
        e
        for e in sorted(_accepted(service), key=lambda e: e["timestamp"], reverse=not up)
        if low <= e["timestamp"] <= high
        and all(_matches(e.get(k, ""), v) for k, v in query if k in FILTERS)
    ]
    items = chosen[offset : offset + limit]
    domain = r.path.split("/")[2]

    def page(at: int) -> str:
        token = base64.urlsafe_b64encode(json.dumps([query, at]).encode()).decode()
        return f"https://api.mailgun.net/v3/{domain}/events/{token}"

    return JSONResponse(
        {
            "items": items,
            "paging": {"next": page(offset + len(items)), "previous": page(max(0, offset - limit))},
        }
    )


def _time(value: str) -> float:
    """Epoch seconds or an RFC 2822 date, as Mailgun's Events API takes `begin` and `end`."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is neither epoch seconds nor an RFC 2822 date") from None


def _matches(value: str, expression: str) -> bool:
    """A filter expression of terms joined by OR (all this double needs of Mailgun's syntax)."""
    return value in [term.strip().strip('"') for term in expression.split(" OR ")]


def _accepted(service: Service) -> list[dict[str, Any]]:
    """One `accepted` event per recipient copy the service took, shaped like Mailgun's."""
    return [
        {
            "id": f"ev-{i}",
            "event": "accepted",
            "timestamp": copy.timestamp,
            "log-level": "info",
            "method": "http",
            "recipient": _address(copy.to),
            "recipient-domain": _address(copy.to).rpartition("@")[2],
            "tags": [],
            "user-variables": copy.metadata,
            "flags": {"is-authenticated": True, "is-test-mode": False},
            "message": {"headers": {"to": copy.to, "subject": copy.subject}, "attachments": []},
        }
        for i, copy in enumerate(service.delivered)
    ]


def _address(to: str) -> str:
    from email.utils import parseaddr

    return parseaddr(to)[1]
