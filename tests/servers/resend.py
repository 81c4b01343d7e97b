"""Resend's POST /emails/batch, as documented: Bearer key, at most 100 emails, each with
from, to, subject and html or text; Idempotency-Key (same key and body: the first
answer again, nothing sent; same key, other body: 409); x-batch-validation
permissive (invalid emails reported by index); 2 requests per second over every endpoint,
else 429.

The emails it took are listed as Resend's OpenAPI definition (resend/resend-openapi) has
them: GET /emails, newest first, `limit` 1-100 (default 20) and the cursors `after` /
`before` (an email's id, left out of the page), `{object: list, has_more, data}` without
the bodies and tags; GET /emails/{id} one email with its tags (as resend-node's
GetEmailResponseSuccess has them), 404 for an id it does not hold."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "re_test_key"
LIST_PARAMETERS = {"limit", "after", "before"}
"""The query parameters of GET /emails in Resend's OpenAPI definition."""


@dataclass
class Email(Delivered):
    """A copy Resend took, with the id it answered for it."""

    id: str = ""


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"statusCode": status, "name": name, "message": message}, status, headers=headers
    )


def _invalid(email: Any) -> str | None:
    if not isinstance(email, dict):
        return "Invalid email object."
    for field in ("from", "to", "subject"):
        if not email.get(field):
            return f"The `{field}` field is missing."
    if not (email.get("html") or email.get("text")):
        return "Either `html` or `text` is required."
    if not all("@" in t for t in email["to"]):
        return (
            "Invalid `to` field. The email address needs to follow the `email@example.com` format."
        )
    return None


def resend(key: str = KEY, requests_per_second: float | None = 2.0) -> Service:
    starts: list[float] = []
    seen: dict[str, tuple[str, Any]] = {}
    ids: dict[int, list[str]] = {}
    """The ids answered for each request's valid emails, by the request."""

    async def answer(service: Service, r: Received) -> Response:
        if r.headers.get("authorization") != f"Bearer {key}":
            return _error(
                403 if r.headers.get("authorization") else 401,
                "invalid_api_key",
                "API key is invalid",
            )
        now = time.monotonic()
        starts.append(now)
        if requests_per_second and len([t for t in starts if t > now - 1.0]) > requests_per_second:
            service.state["rate_limited"] = service.state.get("rate_limited", 0) + 1
            return _error(
                429,
                "rate_limit_exceeded",
                "Too many requests. You can only make 2 requests per second.",
                {
                    "retry-after": "1",
                    "ratelimit-limit": "2",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": "1",
                },
            )
        if r.method == "GET" and r.path == "/emails":
            return _list(service, r)
        if r.method == "GET" and r.path.startswith("/emails/"):
            return _retrieve(service, r.path.removeprefix("/emails/"))
        if r.method != "POST" or r.path != "/emails/batch":
            return _error(404, "not_found", "The requested endpoint does not exist.")
        emails = r.json()
        if not isinstance(emails, list) or not 1 <= len(emails) <= 100:
            return _error(422, "validation_error", "The batch must hold between 1 and 100 emails.")
        digest = hashlib.sha256(r.body).hexdigest()
        key_header = r.headers.get("idempotency-key")
        if key_header and key_header in seen:
            first_digest, first_body = seen[key_header]
            if first_digest != digest:
                return _error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                )
            r.new = False
            return JSONResponse(first_body)
        permissive = r.headers.get("x-batch-validation") == "permissive"
        problems = {i: p for i, email in enumerate(emails) if (p := _invalid(email))}
        if problems and not permissive:
            return _error(422, "validation_error", next(iter(problems.values())))
        ids[id(r)] = [str(uuid.uuid4()) for i in range(len(emails)) if i not in problems]
        body: dict[str, Any] = {"data": [{"id": i} for i in ids[id(r)]]}
        if permissive:
            body["errors"] = [{"index": i, "message": p} for i, p in problems.items()]
        if key_header and not r.scripted_failure:  # Resend keeps keys of requests it processed
            seen[key_header] = (digest, body)
        service.state.setdefault("invalid", set()).update(problems)
        return JSONResponse(body)

    def render(r: Received) -> list[Delivered]:
        if r.path != "/emails/batch":
            return []  # a read of its lists
        return [
            Email(
                e["to"][0],
                e["subject"],
                e.get("html", ""),
                e.get("text", ""),
                {
                    **e.get("headers", {}),
                    **({"Reply-To": ", ".join(e["reply_to"])} if e.get("reply_to") else {}),
                },
                {t["name"]: t["value"] for t in e.get("tags", [])},
                id=email_id,
            )
            for e, email_id in zip(
                [e for e in r.json() if not _invalid(e)], ids[id(r)], strict=True
            )
        ]

    return Service(answer, render)


def _emails(service: Service) -> list[Email]:
    """The emails the service took, newest first."""
    taken = [c for c in service.delivered if isinstance(c, Email)]
    return sorted(reversed(taken), key=lambda c: c.timestamp, reverse=True)


def _listed(email: Email) -> dict[str, Any]:
    """An email as GET /emails lists it (no bodies, no tags)."""
    created = datetime.fromtimestamp(email.timestamp, UTC)
    return {
        "id": email.id,
        "to": [email.to],
        "from": "Newsletter <news@example.org>",
        # the format of the example in Resend's OpenAPI definition
        "created_at": created.strftime("%Y-%m-%d %H:%M:%S.%f+00"),
        "subject": email.subject,
        "bcc": None,
        "cc": None,
        "reply_to": None,
        "last_event": "delivered",
        "scheduled_at": None,
    }


def _list(service: Service, r: Received) -> Response:
    given = dict(r.query)
    if unknown := sorted(set(given) - LIST_PARAMETERS):
        return _error(422, "validation_error", f"Unknown query parameter `{unknown[0]}`.")
    if "after" in given and "before" in given:
        return _error(
            422, "validation_error", "You can only use either `after` or `before`, not both."
        )
    try:
        limit = int(given.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return _error(422, "validation_error", "The `limit` must be between 1 and 100.")
    emails = _emails(service)
    position = {e.id: i for i, e in enumerate(emails)}
    cursor = given.get("after") or given.get("before")
    if cursor is not None and cursor not in position:
        return _error(422, "validation_error", "The cursor is not a known email id.")
    if "before" in given:
        end = position[given["before"]]
        page, more = emails[max(0, end - limit) : end], end - limit > 0
    else:
        start = position[given["after"]] + 1 if "after" in given else 0
        page, more = emails[start : start + limit], start + limit < len(emails)
    return JSONResponse({"object": "list", "has_more": more, "data": [_listed(e) for e in page]})


def _retrieve(service: Service, email_id: str) -> Response:
    email = next((e for e in _emails(service) if e.id == email_id), None)
    if email is None:
        return _error(404, "not_found", "Email not found")
    tags = [{"name": k, "value": v} for k, v in email.metadata.items()]
    return JSONResponse(
        {
            **_listed(email),
            "object": "email",
            "message_id": f"<{email.id}@resend.dev>",
            "html": email.html,
            "text": email.text,
            "tags": tags,
        }
    )
