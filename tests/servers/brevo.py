"""Brevo's POST /v3/smtp/email, as documented: api-key header, sender, subject, content,
messageVersions (at most 1,000, each to at most 99 recipients, own content and
headers allowed, a recipient's name at most 70 characters); 201 with a message id per
version. The content is rendered as Brevo's template language: `{{ params.x }}` takes
the version's (else the request's) params, any other `{{ ... }}` renders empty, and
`{% ... %}` tags are read as code (dropped here)."""

from __future__ import annotations

import re
import uuid
from email.utils import formataddr
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "xkeysib-test"
NAME_LIMIT = 70
TAG = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}", re.S)


def template(text: str, params: dict[str, Any]) -> str:
    """`text` as Brevo renders it (its template language, the parts that matter here)."""

    def one(match: re.Match[str]) -> str:
        expression = (match.group(1) or "").strip()
        if match.group(1) is None or not expression.startswith("params."):
            return ""
        return str(params.get(expression.removeprefix("params."), ""))

    return TAG.sub(one, text)


def _error(code: str, message: str, status: int = 400) -> Response:
    return JSONResponse({"code": code, "message": message}, status)


def _check(body: Any) -> Response | None:
    if not body.get("sender", {}).get("email"):
        return _error("missing_parameter", "sender is missing")
    versions = body.get("messageVersions") or []
    if not versions and not body.get("to"):
        return _error("missing_parameter", "to is missing")
    if len(versions) > 1000:
        return _error("invalid_parameter", "messageVersions: at most 1000 versions per request")
    for v in versions:
        if not v.get("to") or len(v["to"]) > 99:
            return _error("invalid_parameter", "messageVersions.to: between 1 and 99 recipients")
        if not all("@" in t.get("email", "") for t in v["to"]):
            return _error("invalid_parameter", "email is not valid in to")
        if any(len(t.get("name", "")) > NAME_LIMIT for t in v["to"]):
            return _error("invalid_parameter", f"to.name: at most {NAME_LIMIT} characters")
        if not (v.get("subject") or body.get("subject")):
            return _error("missing_parameter", "subject is missing")
        if not (
            v.get("htmlContent")
            or body.get("htmlContent")
            or v.get("textContent")
            or body.get("textContent")
        ):
            return _error("missing_parameter", "htmlContent or textContent is missing")
    return None


def brevo(key: str = KEY) -> Service:
    async def answer(service: Service, r: Received) -> Response:
        if r.headers.get("api-key") != key:
            return _error("unauthorized", "Key not found", 401)
        if r.method != "POST" or r.path != "/v3/smtp/email":
            return _error("not_found", "Invalid route", 404)
        body = r.json()
        problem = _check(body)
        if problem:
            return problem
        count = len(body.get("messageVersions") or []) or 1
        ids = [f"<{uuid.uuid4().hex}@smtp-relay.mailin.fr>" for _ in range(count)]
        return JSONResponse(
            {"messageIds": ids} if body.get("messageVersions") else {"messageId": ids[0]}, 201
        )

    def render(r: Received) -> list[Delivered]:
        body = r.json()
        copies = []
        for v in body["messageVersions"]:
            to = v["to"][0]
            headers = {**body.get("headers", {}), **v.get("headers", {})}
            if body.get("replyTo"):
                reply = body["replyTo"]
                headers["Reply-To"] = (
                    f"{reply['name']} <{reply['email']}>" if reply.get("name") else reply["email"]
                )
            params = {**body.get("params", {}), **v.get("params", {})}
            copies.append(
                Delivered(
                    formataddr((to.get("name", ""), to["email"])),
                    template(v.get("subject") or body["subject"], params),
                    template(v.get("htmlContent") or body.get("htmlContent", ""), params),
                    template(v.get("textContent") or body.get("textContent", ""), params),
                    headers,
                )
            )
        return copies

    return Service(answer, render)
