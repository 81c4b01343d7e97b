"""Mailchimp Marketing API 3.0 (campaigns), as documented: basic auth with any user and
the key, regular campaigns for an audience, content PUT, the send checklist, test,
send, schedule (quarter hours only, in the future), unschedule; errors as
application/problem+json (type, title, status, detail, instance, errors)."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service

KEY = "0123456789abcdef0123456789abcdef-us6"
AUDIENCE = "a1b2c3d4e5"


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    body: dict[str, Any] = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status, media_type="application/problem+json")


def _checklist(campaign: dict[str, Any]) -> dict[str, Any]:
    items = []
    html = campaign.get("content", {}).get("html", "")
    if not html:
        items.append(
            {
                "type": "error",
                "id": 1,
                "heading": "Content",
                "details": "Your campaign has no content.",
            }
        )
    elif "*|UNSUB|*" not in html:
        items.append(
            {
                "type": "error",
                "id": 2,
                "heading": "Unsubscribe link",
                "details": "Your campaign is missing the required *|UNSUB|* merge tag.",
            }
        )
    items += campaign.get("forced_items", [])
    return {"is_ready": not any(i["type"] == "error" for i in items), "items": items}


def mailchimp(key: str = KEY, audience: str = AUDIENCE) -> Service:
    campaigns: dict[str, dict[str, Any]] = {}

    async def answer(service: Service, r: Received) -> Response:
        auth = r.headers.get("authorization", "")
        user_key = (
            base64.b64decode(auth[6:]).decode().split(":", 1)[-1]
            if auth.startswith("Basic ")
            else ""
        )
        if user_key != key:
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        service.state["campaigns"] = campaigns
        body = r.json() if r.body else {}
        route = (r.method, re.sub(r"^/3\.0/campaigns/[^/]+", "/3.0/campaigns/{id}", r.path))
        campaign = (
            campaigns.get(r.path.split("/")[3])
            if route[1].startswith("/3.0/campaigns/{id}")
            else None
        )
        if route[1].startswith("/3.0/campaigns/{id}") and campaign is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        if route == ("POST", "/3.0/campaigns"):
            if (
                body.get("type") != "regular"
                or body.get("recipients", {}).get("list_id") != audience
            ):
                return problem(
                    400,
                    "Invalid Resource",
                    "The resource submitted could not be validated.",
                    [{"field": "recipients.list_id", "message": "Please provide a valid list id."}],
                )
            new = {"id": uuid.uuid4().hex[:10], "type": "regular", "status": "save", **body}
            campaigns[new["id"]] = new
            return JSONResponse(new)
        assert campaign is not None
        if route == ("GET", "/3.0/campaigns/{id}"):
            return JSONResponse(
                {k: v for k, v in campaign.items() if k not in ("content", "forced_items")}
            )
        if route == ("PATCH", "/3.0/campaigns/{id}"):
            if campaign["status"] != "save":
                return problem(
                    400,
                    "Bad Request",
                    f"Cannot update a campaign with status {campaign['status']}.",
                )
            campaign.update({k: v for k, v in body.items() if k in ("settings", "recipients")})
            return JSONResponse(campaign)
        if route == ("PUT", "/3.0/campaigns/{id}/content"):
            if campaign["status"] != "save":
                return problem(
                    400, "Bad Request", "Cannot update content of a scheduled or sent campaign."
                )
            campaign["content"] = {
                "html": body.get("html", ""),
                "plain_text": body.get("plain_text", ""),
            }
            return JSONResponse(campaign["content"])
        if route == ("GET", "/3.0/campaigns/{id}/send-checklist"):
            return JSONResponse(_checklist(campaign))
        ready = _checklist(campaign)["is_ready"]
        if route == ("POST", "/3.0/campaigns/{id}/actions/test"):
            if not body.get("test_emails") or body.get("send_type") not in ("html", "plaintext"):
                return problem(400, "Invalid Resource", "test_emails and send_type are required.")
            campaign.setdefault("tests", []).append(body["test_emails"])
            return Response(status_code=204)
        if route == ("POST", "/3.0/campaigns/{id}/actions/send"):
            if not ready or campaign["status"] != "save":
                return problem(400, "Bad Request", "Your Campaign is not ready to send.")
            campaign["status"] = "sending"
            return Response(status_code=204)
        if route == ("POST", "/3.0/campaigns/{id}/actions/schedule"):
            when = datetime.fromisoformat(body.get("schedule_time", "").replace("Z", "+00:00"))
            if when.minute % 15 or when.second or when <= datetime.now(UTC):
                return problem(
                    400,
                    "Invalid Resource",
                    "Schedule time must be in the future and on the quarter-hour (:00, :15, :30, :45).",
                )
            if not ready:
                return problem(400, "Bad Request", "Your Campaign is not ready to send.")
            campaign.update(status="schedule", send_time=when.isoformat())
            return Response(status_code=204)
        if route == ("POST", "/3.0/campaigns/{id}/actions/unschedule"):
            if campaign["status"] != "schedule":
                return problem(400, "Bad Request", "This campaign is not scheduled.")
            campaign["status"] = "save"
            return Response(status_code=204)
        return problem(
            405, "Method Not Allowed", "The requested method and resource are not compatible."
        )

    def render(r: Received) -> list[Delivered]:
        return []

    return Service(answer, render)


def merge(text: str, fields: dict[str, str]) -> str:
    """`text` as Mailchimp shows it to a member with merge `fields`: `*|IF:TAG|*...*|ELSE:|*...*|END:IF|*`
    (not nested; a condition is true when the field is not empty), then `*|TAG|*`."""
    text = re.sub(
        r"\*\|IF:([A-Z0-9_]+)\|\*(.*?)(?:\*\|ELSE:\|\*(.*?))?\*\|END:IF\|\*",
        lambda m: m.group(2) if fields.get(m.group(1)) else (m.group(3) or ""),
        text,
        flags=re.DOTALL,
    )
    return re.sub(r"\*\|([A-Z0-9_]+)\|\*", lambda m: fields.get(m.group(1), ""), text)
