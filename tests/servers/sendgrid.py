"""SendGrid's POST /v3/mail/send, as documented: Bearer key, at most 1,000
personalizations (and 1,000 recipients), content text/plain before text/html,
substitutions of at most 10,000 bytes per personalization, string custom_args; 202.
Substitutions are replaced one after another, so a value holding another key is
replaced again. A recipient name with a comma or semicolon (which SendGrid's limits
forbid: it then delivers to part of the name) is refused here with 400.

GET /v3/messages is the Email Activity API over the messages it took (one per personalization),
checked against SendGrid's OpenAPI definition (sendgrid-oai): only `query` (required) and
`limit` (1 to 1,000, 10 by default); {"messages": [...]} in its abbreviated shape, which names
the recipient but not the custom args. It answers 403 to an account without the Email
Activity add-on (`activity=False`) and 429 past 6 requests a minute, as documented. Of the
query language this double plays `unique_args['KEY']="VALUE"` terms joined by OR, and
refuses other syntax rather than guess."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from email.utils import formataddr
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "SG.test-key"
ACTIVITY_PARAMETERS = {"query", "limit"}
"""The query parameters of GET /v3/messages in SendGrid's OpenAPI definition."""
TERM = re.compile(r"unique_args\['([^']+)'\]=\"([^\"]*)\"")


def _errors(*messages: tuple[str | None, str], status: int = 400) -> Response:
    return JSONResponse(
        {"errors": [{"field": f, "message": m, "help": None} for f, m in messages]}, status
    )


def _check(body: Any) -> Response | None:
    personalizations = body.get("personalizations")
    if not personalizations:
        return _errors(("personalizations", "You must have at least one personalization."))
    if len(personalizations) > 1000:
        return _errors(
            (
                "personalizations",
                "The personalization block is limited to 1000 personalizations per API request.",
            )
        )
    if (
        sum(
            len(p.get("to", [])) + len(p.get("cc", [])) + len(p.get("bcc", []))
            for p in personalizations
        )
        > 1000
    ):
        return _errors(
            (
                "personalizations",
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
            )
        )
    if not body.get("from", {}).get("email"):
        return _errors(("from.email", "The from object must be provided for every email send."))
    kinds = [c.get("type") for c in body.get("content", [])]
    if not kinds or "text/plain" in kinds and kinds.index("text/plain") != 0:
        return _errors(
            (
                "content",
                "If present, text/plain content must be first, followed by any other content.",
            )
        )
    for p in personalizations:
        if not p.get("to") or not all("@" in t.get("email", "") for t in p["to"]):
            return _errors(("personalizations.to", "Does not contain a valid address."))
        if any(set(t.get("name", "")) & set(",;") for t in p["to"]):
            return _errors(("personalizations.to.name", "may not include commas or semicolons"))
        if not (p.get("subject") or body.get("subject")):
            return _errors(("subject", "The subject is required."))
        args = {**body.get("custom_args", {}), **p.get("custom_args", {})}
        if not all(isinstance(v, str) for v in args.values()):
            return _errors(("custom_args", "Invalid type. Expected: string."))
        size = sum(len(k.encode()) + len(v.encode()) for k, v in p.get("substitutions", {}).items())
        if size > 10_000:
            return _errors(
                (
                    "personalizations.substitutions",
                    "The total collective size of your substitutions may not exceed 10,000 bytes per personalization object.",
                )
            )
    return None


def sendgrid(key: str = KEY, activity: bool = True) -> Service:
    """`activity`: the account has the Email Activity add-on. `state["messages"]` is what the
    Email Activity API lists (a test removes those it calls lost)."""

    async def answer(service: Service, r: Received) -> Response:
        if r.headers.get("authorization") != f"Bearer {key}":
            return _errors(
                (None, "The provided authorization grant is invalid, expired, or revoked"),
                status=401,
            )
        if r.method == "GET" and r.path == "/v3/messages":
            return (
                _activity(service, r)
                if activity
                else _errors((None, "access forbidden"), status=403)
            )
        if r.method != "POST" or r.path != "/v3/mail/send":
            return _errors((None, "Not found"), status=404)
        try:
            body = r.json()
        except ValueError:
            return _errors((None, "Bad Request"))
        if (refused := _check(body)) is not None:
            return refused
        message_id = uuid.uuid4().hex[:22]
        if not getattr(r, "scripted_failure", False):
            service.state["messages"] += [
                {
                    "from_email": body["from"]["email"],
                    "msg_id": f"{message_id}.filter0001p1mdw1-{i}",
                    "subject": p.get("subject") or body.get("subject", ""),
                    "to_email": p["to"][0]["email"],
                    "status": "processed",
                    "opens_count": 0,
                    "clicks_count": 0,
                    "last_event_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "unique_args": {**body.get("custom_args", {}), **p.get("custom_args", {})},
                }
                for i, p in enumerate(body["personalizations"])
            ]
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    def render(r: Received) -> list[Delivered]:
        if r.path != "/v3/mail/send":
            return []  # an Email Activity query: nothing is sent
        body = r.json()
        content = {c["type"]: c["value"] for c in body["content"]}
        copies = []
        for p in body["personalizations"]:
            subs: dict[str, str] = p.get("substitutions", {})

            def fill(text: str, subs: dict[str, str] = subs) -> str:
                for tag, value in subs.items():
                    text = text.replace(tag, value)
                return text

            to = p["to"][0]
            copies.append(
                Delivered(
                    formataddr((to.get("name", ""), to["email"])),
                    fill(p.get("subject") or body.get("subject", "")),
                    fill(content.get("text/html", "")),
                    fill(content.get("text/plain", "")),
                    {**body.get("headers", {}), **p.get("headers", {})},
                    {**body.get("custom_args", {}), **p.get("custom_args", {})},
                )
            )
        return copies

    service = Service(answer, render)
    service.state["messages"] = []
    service.state["asked"] = []
    return service


def _activity(service: Service, r: Received) -> Response:
    """GET /v3/messages: the messages whose custom args match the query, newest first."""
    now = time.monotonic()
    asked = [at for at in service.state["asked"] if now - at < 60]
    if len(asked) >= 6:
        return _errors((None, "too many requests"), status=429)
    service.state["asked"] = [*asked, now]
    given = dict(r.query)
    if unknown := sorted(set(given) - ACTIVITY_PARAMETERS):
        return _errors((None, f"invalid parameter: {unknown[0]}"))
    try:
        limit = float(given.get("limit", 10))
    except ValueError:
        return _errors((None, "limit must be a number"))
    if not 1 <= limit <= 1000:
        return _errors((None, "limit must be greater than 0 and at most 1000"))
    query = given.get("query")
    if not query:
        return _errors((None, "query is required"))
    terms = [TERM.fullmatch(t.strip()) for t in query.split(" OR ")]
    if not all(terms):
        return _errors(
            (None, f"invalid syntax: the local SendGrid plays only unique_args terms: {query}")
        )
    wanted = {(t.group(1), t.group(2)) for t in terms if t}
    found = [
        {k: v for k, v in m.items() if k != "unique_args"}
        for m in reversed(service.state["messages"])
        if wanted & set(m["unique_args"].items())
    ]
    return JSONResponse({"messages": found[: int(limit)]})
