"""Mandrill's POST /api/1.0/messages/send.json, as documented: the key in the JSON body,
a status per recipient (sent, queued, rejected with reject_reason, invalid), and
errors as HTTP 500 with a JSON name (Invalid_Key, ValidationError, GeneralError)."""

from __future__ import annotations

import uuid
from email.utils import formataddr

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "md-test-key"


def _error(name: str, message: str, code: int = -1) -> Response:
    return JSONResponse({"status": "error", "code": code, "name": name, "message": message}, 500)


def mandrill(
    key: str = KEY, rejects: dict[str, str] | None = None, queued: bool = False
) -> Service:
    """`rejects`: address -> reject_reason for addresses on Mandrill's rejection list."""
    rejects = rejects or {}

    async def answer(service: Service, r: Received) -> Response:
        if r.method != "POST" or r.path != "/api/1.0/messages/send.json":
            return _error("Unknown_Method", "Unknown method", -2)
        try:
            body = r.json()
        except ValueError:
            return _error("ValidationError", "You must specify a key value")
        if body.get("key") != key:
            return _error("Invalid_Key", "Invalid API key")
        message = body.get("message") or {}
        if not message.get("from_email") or not message.get("to"):
            return _error("ValidationError", 'Validation error: {"message":{"to":"required"}}')
        results = []
        for to in message["to"]:
            email = to["email"]
            if "@" not in email:
                results.append({"email": email, "status": "invalid", "_id": uuid.uuid4().hex})
            elif email in rejects:
                results.append(
                    {
                        "email": email,
                        "status": "rejected",
                        "reject_reason": rejects[email],
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
        return JSONResponse(results)

    def render(r: Received) -> list[Delivered]:
        m = r.json()["message"]
        return [
            Delivered(
                formataddr((to.get("name", ""), to["email"])),
                m["subject"],
                m["html"],
                m["text"],
                dict(m.get("headers", {})),
                dict(m.get("metadata", {})),
            )
            for to in m["to"]
            if "@" in to["email"] and to["email"] not in rejects
        ]

    return Service(answer, render)
