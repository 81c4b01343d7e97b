"""Commands: preview."""

from __future__ import annotations

import errno
import socket
import webbrowser
from typing import Annotated
from urllib.parse import quote

import typer
import uvicorn

from campaign.cli.app import app, console, get_config
from campaign.errors import UserError

SHUTDOWN_SECONDS = 1
"""Open pages hold their live-reload stream open; Ctrl-C closes them after this long."""


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the browser opens, so the first request cannot miss it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use (another preview?): choose one with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


@app.command()
def preview(
    campaign: Annotated[str | None, typer.Argument(help="Campaign to open: a folder under campaigns/ or a path.")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8025,
    host: Annotated[str, typer.Option(help="Address to listen on; other than loopback, anyone on the network can see drafts.")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="Open the preview in the web browser.")] = False,
) -> None:
    """Preview campaigns in the browser while you edit them: live reload, phone and desktop widths."""
    from campaign.web.preview import create_preview_app

    config = get_config()
    preview_app = create_preview_app(config, campaign, host=host)
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/"
    start = preview_app.state.preview.start_slug
    if start:
        url += f"campaigns/{quote(start)}"
    console.print(f"Previewing {config.workspace} at [bold]{url}[/bold]  (Ctrl-C stops)")
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(
        uvicorn.Config(preview_app, log_level="warning", lifespan="off", timeout_graceful_shutdown=SHUTDOWN_SECONDS)
    )
    try:
        server.run(sockets=[sock])
    finally:
        preview_app.state.preview.stop_watching()
        sock.close()
