"""Mailgun's POST /v3/{domain}/messages, as documented: basic auth api:KEY, form fields,
at most 1,000 recipients, recipient-variables for batches, %recipient.KEY% filled per recipient."""

from __future__ import annotations

import base64
import json
import uuid

from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.servers.scripted import Delivered, Received, Service, substitute

KEY = "key-test-mailgun"
DOMAIN = "mg.example.org"


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"message": message}, status)


def mailgun(domain: str = DOMAIN, key: str = KEY) -> Service:
    async def answer(service: Service, r: Received) -> Response:
        expected = "Basic " + base64.b64encode(f"api:{key}".encode()).decode()
        if r.headers.get("authorization") != expected:
            return PlainTextResponse("Forbidden", 401)
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


def _address(to: str) -> str:
    from email.utils import parseaddr

    return parseaddr(to)[1]
