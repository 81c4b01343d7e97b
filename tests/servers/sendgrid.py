"""SendGrid's POST /v3/mail/send, as documented: Bearer key, at most 1,000
personalizations (and 1,000 recipients), content text/plain before text/html,
substitutions of at most 10,000 bytes per personalization, string custom_args; 202.
Substitutions are replaced one after another, so a value holding another key is
replaced again. A recipient name with a comma or semicolon (which SendGrid's limits
forbid: it then delivers to part of the name) is refused here with 400."""

from __future__ import annotations

import uuid
from email.utils import formataddr
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "SG.test-key"


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


def sendgrid(key: str = KEY) -> Service:
    async def answer(service: Service, r: Received) -> Response:
        if r.headers.get("authorization") != f"Bearer {key}":
            return _errors(
                (None, "The provided authorization grant is invalid, expired, or revoked"),
                status=401,
            )
        if r.method != "POST" or r.path != "/v3/mail/send":
            return _errors((None, "Not found"), status=404)
        try:
            body = r.json()
        except ValueError:
            return _errors((None, "Bad Request"))
        return _check(body) or Response(
            status_code=202, headers={"X-Message-Id": uuid.uuid4().hex[:22]}
        )

    def render(r: Received) -> list[Delivered]:
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

    return Service(answer, render)
