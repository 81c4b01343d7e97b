"""How `campaign serve` holds up against hostile clients: bounded bodies, headers and connections.

- `BodyLimit` (ASGI middleware) counts the bytes it receives, chunked or not, and
  answers 413 as soon as a body passes its route's limit; nothing further is read.
- `guarded_h11` closes a connection whose request headers are not complete within
  `HEADER_TIMEOUT` (slow-header clients), and refuses connections past the limit.
- `TokenMask` keeps personal link tokens out of the access log.
- `run` binds the port first (a port in use is a plain error) and starts uvicorn.

Each refusal is one log line, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import socket
import time
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("campaign.web")

FORM_BODY_LIMIT = 64 * 1024
"""Largest body of a page's form (the forward form with five addresses and a note is < 4 KB)."""
WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024
"""Largest webhook body (SendGrid batches run to a few hundred KB)."""
HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request's headers, from connecting or from the previous response."""
MAX_CONNECTIONS = 1000
"""Open connections at most; past it new ones are closed at once (requests past it get 503)."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest request line plus headers (h11's incomplete-event limit)."""
KEEP_ALIVE = 5
"""Seconds an idle keep-alive connection stays open."""

_TOKEN_PATH = re.compile(r"/(unsubscribe|preferences|forward)/[^/?\s\"]+")


def masked_path(path: str) -> str:
    """The path with a personal link's token replaced: /unsubscribe/*** ."""
    return _TOKEN_PATH.sub(r"/\1/***", path)


class TokenMask(logging.Filter):
    """Rewrites uvicorn's access-log arguments so a link's token never reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                masked_path(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


class BodyLimit:
    """Reads a request's body up to its route's limit before the app sees it; 413 past it.

    Counting what arrives (not trusting Content-Length) holds for chunked bodies too;
    the app then gets the body in one piece, so its own reads cannot grow past the limit.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def limit_for(path: str) -> int:
        return WEBHOOK_BODY_LIMIT if path.startswith("/webhooks/") else FORM_BODY_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await self._refuse(scope, send, limit)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        client = scope.get("client") or ("?", 0)
        log.warning(
            "refused %s %s from %s: body over %d bytes",
            scope["method"],
            masked_path(scope["path"]),
            client[0],
            limit,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": b"request body too large\n"})


def guarded_h11(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request's headers and a connection cap."""

    class Guarded(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _last_refusal = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                now = time.monotonic()
                if now - Guarded._last_refusal > 1.0:  # one line a second, however many
                    Guarded._last_refusal = now
                    log.warning("refusing connections: %d open", len(self.connections))
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self.conn.trailing_data[0]:  # some bytes came, not a whole request head
                    client = self.client[0] if self.client else "?"
                    log.warning("closed a connection from %s: request headers too slow", client)
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return Guarded


def server_config(
    app: ASGIApp,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's settings for `campaign serve`, with every bound above, and the token mask."""
    config = uvicorn.Config(
        app,
        http=guarded_h11(header_timeout, max_connections),
        proxy_headers=True,
        server_header=False,
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        **options,
    )
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, TokenMask) for f in access.filters):
        access.addFilter(TokenMask())
    return config


def raise_file_limit(wanted: int) -> None:
    """Let the process hold `wanted` sockets (plus slack), within the hard limit, so accept()
    never fails for want of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted + 64 if hard == resource.RLIM_INFINITY else min(hard, wanted + 64)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(app: ASGIApp, sock: socket.socket, **options: Any) -> None:
    """Serve `app` on the bound `sock` until stopped."""
    raise_file_limit(MAX_CONNECTIONS)
    try:
        uvicorn.Server(server_config(app, log_level="info", **options)).run(sockets=[sock])
    finally:
        sock.close()
