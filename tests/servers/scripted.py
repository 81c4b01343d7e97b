"""What every mail-service double shares: it records each request, checks it the way
the service's documentation describes, answers as the service does, and lets a test
script the next replies (a Response, DROP or HANG) after the checks pass.

`delivered` holds what each recipient would receive, rendered by the double from
the request (the service's own substitution applied), so a test can compare it with
the message the engine built.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DROP = "drop"
"""Start a 200 reply, then close the connection mid-body: the outcome cannot be known."""
HANG = "hang"
"""Never answer (until the server stops): the client times out."""


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    new: bool = True
    at: float = field(default_factory=time.monotonic)
    """False when the service answers from its idempotency store: nothing is sent again."""

    def json(self) -> Any:
        return json.loads(self.body)

    def field(self, name: str) -> str:
        return next(v for k, v in self.form if k == name)

    def fields(self, name: str) -> list[str]:
        return [v for k, v in self.form if k == name]


@dataclass
class Delivered:
    """One recipient's copy, as the service would send it."""

    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    """When the service took it."""
    timestamp: float = field(default_factory=time.time)
    """The same, in epoch seconds, as a service's event log gives it."""


Answer = Callable[["Service", Received], Awaitable[Response]]
Render = Callable[[Received], list[Delivered]]


class Service:
    """An ASGI app playing one mail service: `answer` checks a request and replies;
    `render` gives the recipients' copies of a request the service accepted."""

    def __init__(self, answer: Answer, render: Render) -> None:
        self.answer = answer
        self.render = render
        self.received: list[Received] = []
        self.delivered: list[Delivered] = []
        self.script: deque[Response | str] = deque()
        self.state: dict[str, Any] = {}

    def then(self, *replies: Response | str) -> Service:
        """Replies for the next valid requests, in order; afterwards the service answers itself."""
        self.script.extend(replies)
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away mid-request (a killed process): nothing arrived
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, replay)
        received = Received(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            query=request.query_params.multi_items(),
        )
        if request.headers.get("content-type", "").startswith(
            ("multipart/form-data", "application/x-www-form")
        ):
            form = await request.form(max_fields=100_000, max_part_size=50 * 1024 * 1024)
            received.form = [(k, str(v)) for k, v in form.multi_items()]
        self.received.append(received)
        received.scripted_failure = bool(self.script) and isinstance(self.script[0], Response)
        response = await self.answer(self, received)
        if response.status_code < 300 and self.script:
            scripted = self.script.popleft()
            if scripted == DROP:
                self.delivered.extend(self.render(received))  # taken, but the answer is lost
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"1000")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
                return
            if scripted == HANG:
                await asyncio.sleep(3600)
                return
            assert isinstance(scripted, Response)
            response = scripted
        elif response.status_code < 300 and received.new:
            self.delivered.extend(self.render(received))
        await response(scope, replay, send)


def substitute(text: str, pattern: str, values: Mapping[str, str]) -> str:
    """Replace each match of `pattern` (group 1: the key) by its value; unknown keys stay."""
    return re.sub(pattern, lambda m: values.get(m.group(1), m.group(0)), text)
