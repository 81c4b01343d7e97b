"""A local Postmark: POST /email/batch checked the way Postmark's documentation describes it.

It checks the X-Postmark-Server-Token header (401, ErrorCode 10), a JSON array body
(422, ErrorCode 402 otherwise) of at most 500 messages (422, ErrorCode 410), and per
message the required From, To, Subject and HtmlBody or TextBody (ErrorCode 300 in
that message's answer). Recipients listed as inactive get ErrorCode 406.

Tests script the next replies with `then(...)`: a status (429 with Retry-After,
500, 422, 401), a hang (answer only after a delay, having accepted the batch), or a
dropped connection (batch accepted, reply cut off midway). `accepted` records every
message taken, so a test can count deliveries per recipient.

GET /messages/outbound is the outbound message search: `count` (at most 500) and `offset`
required, count + offset at most 10,000, filters `recipient`, `tag` and one `metadata_<key>`,
answering {"TotalCount", "Messages": [...]} newest first, as Postmark's Messages API does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "postmark-test-token"


@dataclass(frozen=True)
class Accepted:
    to: str
    send_id: str | None
    message_id: str
    at: float
    metadata: dict[str, str] = field(default_factory=dict)
    tag: str = ""


@dataclass(frozen=True)
class Reply:
    """A scripted reply: `status` (with `body` and `headers`), or `hang` seconds, or `drop`."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    drop: bool = False


class PostmarkServer:
    def __init__(self, *, token: str = TOKEN, keep_payloads: bool = False) -> None:
        self.token = token
        self.keep_payloads = keep_payloads
        self.accepted: list[Accepted] = []
        self.payloads: list[list[dict[str, Any]]] = []
        self.requests: list[dict[str, str]] = []
        self.inactive: set[str] = set()
        self.script: deque[Reply] = deque()
        self.lock = threading.Lock()
        self.searches = 0
        self.app = Starlette(
            routes=[
                Route("/email/batch", self.batch, methods=["POST"]),
                Route("/messages/outbound", self.search, methods=["GET"]),
            ]
        )

    def then(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order; afterwards, normally again."""
        self.script.extend(replies)

    def deliveries(self) -> Counter[str]:
        """Messages accepted per recipient address."""
        with self.lock:
            return Counter(a.to for a in self.accepted)

    def _refused(self, request: Request) -> Response | None:
        if request.headers.get("x-postmark-server-token") == self.token:
            return None
        return JSONResponse(
            {
                "ErrorCode": 10,
                "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid.",
            },
            status_code=401,
        )

    async def search(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        query = request.query_params
        try:
            count, offset = int(query["count"]), int(query["offset"])
        except (KeyError, ValueError):
            return JSONResponse(
                {
                    "ErrorCode": 600,
                    "Message": "Message query exception: count and offset are required.",
                },
                status_code=422,
            )
        if not 0 < count <= 500 or offset < 0 or count + offset > 10_000:
            return JSONResponse(
                {
                    "ErrorCode": 600,
                    "Message": "Count must be at most 500 and count + offset at most 10,000.",
                },
                status_code=422,
            )
        metadata = [
            (k.removeprefix("metadata_"), v) for k, v in query.items() if k.startswith("metadata_")
        ]
        with self.lock:
            self.searches += 1
            found = [
                a
                for a in reversed(self.accepted)
                if query.get("recipient", a.to) == a.to
                and query.get("tag", a.tag) == a.tag
                and all(a.metadata.get(k) == v for k, v in metadata)
            ]
        return JSONResponse(
            {
                "TotalCount": len(found),
                "Messages": [
                    {
                        "MessageID": a.message_id,
                        "To": [{"Email": a.to, "Name": None}],
                        "Recipients": [a.to],
                        "Tag": a.tag,
                        "Status": "Sent",
                        "Metadata": a.metadata,
                        "ReceivedAt": "2026-01-01T00:00:00Z",
                    }
                    for a in found[offset : offset + count]
                ],
            }
        )

    async def batch(self, request: Request) -> Response:
        self.requests.append(dict(request.headers))
        if (refused := self._refused(request)) is not None:
            return refused
        reply = self.script.popleft() if self.script else Reply()
        if reply.status != 200:
            body = (
                reply.body
                if reply.body is not None
                else {"ErrorCode": reply.status, "Message": f"scripted {reply.status}"}
            )
            return JSONResponse(body, status_code=reply.status, headers=reply.headers)
        try:
            # orjson: a batch is up to 500 messages of 50 KB, and the json module parsed about
            # 110 MB/s, a whole core of the machine a send benchmark runs on.
            messages = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse(
                {"ErrorCode": 402, "Message": "Received invalid JSON input."}, status_code=422
            )
        if not isinstance(messages, list):
            return JSONResponse(
                {"ErrorCode": 402, "Message": "Expected a JSON array of messages."}, status_code=422
            )
        if len(messages) > 500:
            return JSONResponse(
                {
                    "ErrorCode": 410,
                    "Message": "Too many batch messages. You may only send up to 500 messages at once.",
                },
                status_code=422,
            )
        if self.keep_payloads:
            self.payloads.append(messages)
        answers = [self._one(m) for m in messages]
        if reply.hang:
            await asyncio.sleep(reply.hang)
        if reply.drop:
            return _Dropped()
        return JSONResponse(answers)

    def _one(self, message: Any) -> dict[str, Any]:
        if not isinstance(message, dict):
            return {"ErrorCode": 402, "Message": "Each message must be a JSON object."}
        for required in ("From", "To", "Subject"):
            if not message.get(required):
                return {
                    "ErrorCode": 300,
                    "Message": f"Invalid email request: '{required}' is required.",
                }
        if not (message.get("HtmlBody") or message.get("TextBody")):
            return {
                "ErrorCode": 300,
                "Message": "Provide either email TextBody or HtmlBody or both.",
            }
        to = parseaddr(message["To"])[1]
        if "@" not in to:
            return {
                "ErrorCode": 300,
                "Message": f"Error parsing 'To': Illegal email address '{message['To']}'.",
            }
        if to in self.inactive:
            return {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
            }
        message_id = str(uuid.uuid4())
        metadata = message.get("Metadata") or {}
        with self.lock:
            self.accepted.append(
                Accepted(
                    to,
                    metadata.get("send_id"),
                    message_id,
                    time.monotonic(),
                    metadata,
                    message.get("Tag") or "",
                )
            )
        return {
            "ErrorCode": 0,
            "Message": "OK",
            "MessageID": message_id,
            "SubmittedAt": "2026-01-01T00:00:00Z",
            "To": to,
        }


class _Dropped(Response):
    """Starts a reply and cuts the connection midway: the client cannot know what happened."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"100000")],
            }
        )
        await send({"type": "http.response.body", "body": b'[{"ErrorCode":0,', "more_body": True})
        raise ConnectionAbortedError("scripted drop")
