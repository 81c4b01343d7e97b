"""Commands: serve (the public pages and the mail services' webhooks)."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign.cli.app import app, console, get_config


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default: web.host in campaign.toml, else 127.0.0.1)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on (default: web.port in campaign.toml, else 8000)."),
    ] = None,
) -> None:
    """Serve the archive, unsubscribe, preferences and forward pages, and the webhooks.

    Run it behind a reverse proxy that terminates HTTPS (see the README). Webhook
    secrets come from environment variables such as POSTMARK_WEBHOOK_AUTH.
    """
    from campaign.web.app import create_app
    from campaign.web.preview import listen
    from campaign.web.serving import run

    config = get_config()
    host = host or config.web.host
    port = port or config.web.port
    sock = listen(host, port)  # a port in use is a plain error, before anything starts
    application = create_app(config)
    console.print(
        f"Serving {config.organisation.name} on http://{host}:{port} (public URL {config.public_base_url})",
        soft_wrap=True,
    )
    run(application, sock)
