"""Mandrill's POST /api/1.0/messages/send.json, as documented: the key in the JSON body,
a status per recipient (sent, queued, rejected with reject_reason, invalid), and
errors as HTTP 500 with a JSON name (Invalid_Key, ValidationError, GeneralError).
Merge tags (`*|NAME|*`) are evaluated from global_merge_vars and merge_vars unless the
message says `"merge": false`; unknown ones render empty."""

from __future__ import annotations

import re
import uuid
from email.utils import formataddr
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "md-test-key"
MERGE_TAG = re.compile(r"\*\|([A-Za-z0-9_:]+)\|\*")


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
        return JSONResponse(results)

    def render(r: Received) -> list[Delivered]:
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
    return service
