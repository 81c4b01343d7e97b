"""Commands: preview."""

from __future__ import annotations

import webbrowser
from typing import Annotated
from urllib.parse import quote

import typer

from campaign.cli.app import app, console, get_config


@app.command()
def preview(
    campaign: Annotated[
        str | None, typer.Argument(help="Campaign to open: a folder under campaigns/ or a path.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8025,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; beyond loopback, your network can see the drafts."
        ),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the preview in the web browser.")
    ] = False,
) -> None:
    """Preview campaigns in the browser as you edit them: live reload, phone and desktop widths."""
    from campaign.web.preview import create_preview_app, listen, run

    config = get_config()
    preview_app = create_preview_app(config, campaign, host=host)
    sock = listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/"
    if start := preview_app.state.preview.start_slug:
        url += f"campaigns/{quote(start)}"
    console.print(
        f"Previewing {config.workspace} at {url}  (Ctrl-C stops)", markup=False, soft_wrap=True
    )
    if open_browser:
        webbrowser.open(url)
    run(preview_app, sock)
