"""Resend's POST /emails/batch, as documented: Bearer key, at most 100 emails, each with
from, to, subject and html or text; Idempotency-Key (same key and body: the first
answer again, nothing sent; same key, other body: 409); x-batch-validation
permissive (invalid emails reported by index); 2 requests per second, else 429."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "re_test_key"


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

    async def answer(service: Service, r: Received) -> Response:
        if r.headers.get("authorization") != f"Bearer {key}":
            return _error(
                403 if r.headers.get("authorization") else 401,
                "invalid_api_key",
                "API key is invalid",
            )
        if r.method != "POST" or r.path != "/emails/batch":
            return _error(404, "not_found", "The requested endpoint does not exist.")
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
        body: dict[str, Any] = {
            "data": [{"id": str(uuid.uuid4())} for i in range(len(emails)) if i not in problems]
        }
        if permissive:
            body["errors"] = [{"index": i, "message": p} for i, p in problems.items()]
        if key_header and not r.scripted_failure:  # Resend keeps keys of requests it processed
            seen[key_header] = (digest, body)
        service.state.setdefault("invalid", set()).update(problems)
        return JSONResponse(body)

    def render(r: Received) -> list[Delivered]:
        return [
            Delivered(
                e["to"][0],
                e["subject"],
                e.get("html", ""),
                e.get("text", ""),
                {
                    **e.get("headers", {}),
                    **({"Reply-To": ", ".join(e["reply_to"])} if e.get("reply_to") else {}),
                },
                {t["name"]: t["value"] for t in e.get("tags", [])},
            )
            for e in r.json()
            if not _invalid(e)
        ]

    return Service(answer, render)
