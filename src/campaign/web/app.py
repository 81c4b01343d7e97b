"""`create_app(config)`: the ASGI app of `campaign serve`, composed in one place.

    routes        archive, assets, unsubscribe, preferences, forward, webhooks, healthz
    middleware    security headers (no referrer: the URLs hold tokens; no framing; no scripts);
                  body limits (serving.BodyLimit: webhooks 5 MB, forms 64 KB, chunked or not)

The app keeps no session and sets no cookie. It shares the database with the
sender: SQLite when both run on one machine, PostgreSQL when they do not.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaign import db
from campaign.config import Config
from campaign.errors import UserError
from campaign.web import durable, public
from campaign.web.assets import asset
from campaign.web.serving import BodyLimit
from campaign.web.site import Site
from campaign.web.webhooks import NORMALISERS, Incoming, Malformed, Refused

log = logging.getLogger("campaign.web")

SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:; "
        "font-src https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response, and `Cache-Control: no-store` to personal pages."""

    PERSONAL = ("/unsubscribe/", "/preferences/", "/forward/", "/webhooks/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        personal = str(scope.get("path", "")).startswith(self.PERSONAL)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if personal:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> Response:
    """For the reverse proxy and monitoring: 200 when the database answers."""
    site = public.site_of(request)

    def ping() -> None:
        with site.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await site.db(ping)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check failed: %s", type(exc).__name__)
        return PlainTextResponse("database unavailable\n", status_code=503)
    return PlainTextResponse("ok\n")


async def webhook(request: Request) -> Response:
    site = public.site_of(request)
    service = request.path_params["service"]
    normaliser = NORMALISERS.get(service)
    if normaliser is None:
        return JSONResponse({"error": "unknown service"}, status_code=404)
    if request.method == "HEAD":  # Mandrill checks that the URL exists before it saves a webhook
        return Response(status_code=200)
    body = await request.body()
    incoming = Incoming(
        url=site.config.public_base_url + request.url.path,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
    )
    try:
        events = await normaliser(incoming, site.webhooks)
    except Refused as exc:
        log.warning("webhook %s refused: %s", service, exc)
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    except Malformed as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    outcome, queued = await durable.record_webhook(site, events)
    reply = {"recorded": outcome.recorded, "replayed": outcome.replayed}
    return JSONResponse(reply | ({"queued": queued} if queued else {}))


async def user_error(request: Request, exc: Exception) -> Response:
    """A store refusal (an unknown list, say) shown plainly, never as a traceback."""
    message = exc.message if isinstance(exc, UserError) else "Something went wrong."
    return public.site_of(request).message(request, 400, "That did not work", message)


async def not_found(request: Request, exc: Exception) -> Response:
    return public.site_of(request).message(
        request, 404, "Not found", "There is nothing at this address."
    )


def create_app(config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The app for `config`. `transport` carries its outbound HTTP (the forward's mail
    service, SNS certificates and confirmations); tests point it at loopback servers."""
    site = Site(config, db.connect(config.database_url), transport=transport)
    token = "{token:str}"
    routes = [
        Route("/", public.archive_index),
        Route("/archive", public.archive_index),
        Route("/archive/feed.atom", public.archive_feed),
        Route("/archive/{slug:str}", public.archive_copy),
        Route("/assets/{name:str}", asset),
        Route(f"/unsubscribe/{token}", public.unsubscribe, methods=["GET", "POST"]),
        Route(f"/preferences/{token}", public.preferences, methods=["GET", "POST"]),
        Route(f"/forward/{token}", public.forward, methods=["GET", "POST"]),
        Route("/webhooks/{service:str}", webhook, methods=["POST", "HEAD"]),
        Route("/healthz", healthz),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with durable.maintained(site):
            yield
        await site.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit)],
        exception_handlers={UserError: user_error, 404: not_found},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # no redirect anywhere, not even /archive/ -> /archive
    app.state.site = site
    return app
