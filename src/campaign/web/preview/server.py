"""Serving the preview: a socket bound before the browser opens, and a uvicorn server that
ends the pages' live-reload streams first when it stops."""

from __future__ import annotations

import errno
import socket

import uvicorn
from starlette.applications import Starlette

from campaign.errors import UserError
from campaign.web.preview.state import Preview

SHUTDOWN_SECONDS = 1
"""Longest wait for open requests when the preview stops."""


class _Server(uvicorn.Server):
    """Ends the open pages' live-reload streams first, so Ctrl-C does not wait on browser tabs."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(
            uvicorn.Config(
                app, log_level="warning", lifespan="off", timeout_graceful_shutdown=SHUTDOWN_SECONDS
            )
        )
        self.preview: Preview = app.state.preview

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.preview.close()
        await super().shutdown(sockets=sockets)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the browser opens so that its first request cannot miss."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that name it (no 40 ms delayed ACKs).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is in use (by another server?): choose another with --port"
            ) from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


def run(app: Starlette, sock: socket.socket) -> None:
    """Serve `app` on `sock` until Ctrl-C."""
    try:
        _Server(app).run(sockets=[sock])
    finally:
        sock.close()
