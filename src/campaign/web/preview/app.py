"""`create_preview_app(config, campaign)`: the ASGI app of `campaign preview`, composed in
one place, as `campaign.web.app` composes the public site.

    routes        index, campaign pages, the email and its images, send-test, the public
                  pages' stand-ins, reports, live-reload events, static files
    middleware    loopback Host headers only (when listening on loopback)
    state         app.state.preview (the `Preview`), app.state.templates, public_templates
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from campaign import placeholders
from campaign.compile.checks import MAX_HTML_BYTES
from campaign.config import Config
from campaign.schedule import format_local
from campaign.web.preview import pages, reports
from campaign.web.preview.state import Preview

WEB = Path(__file__).parent.parent
TEMPLATES = WEB / "templates" / "preview"
PUBLIC_TEMPLATES = WEB / "templates"
"""The public site's own templates (campaign serve): the preview shows its pages with them."""
STATIC = WEB / "static" / "preview"

DESKTOP_WIDTH = 800
MOBILE_WIDTH = 375

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

ROUTES = [
    Route("/", pages.index),
    Route("/events", pages.events),
    Route("/campaigns/{slug}", pages.campaign_page),
    Route("/campaigns/{slug}/email.html", pages.email),
    Route("/campaigns/{slug}/assets/{name}", pages.asset),
    Route("/campaigns/{slug}/send-test", pages.send_test, methods=["POST"]),
    Route("/preview-pages/{page}/{rest}", pages.public_page, methods=["GET", "POST"]),
    Route("/reports", reports.reports_index),
    Route("/reports/{slug}", reports.report_page),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def _templates(preview: Preview) -> Environment:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    templates.globals.update(
        gmail_clip=MAX_HTML_BYTES, desktop_width=DESKTOP_WIDTH, mobile_width=MOBILE_WIDTH
    )
    templates.filters["where"] = preview.where
    templates.filters["merge_tags"] = placeholders.shown
    templates.filters["kb"] = lambda size: f"{size / 1024:.1f} KB"
    templates.filters["local"] = format_local
    templates.filters["clock"] = lambda when: when.astimezone().strftime("%H:%M:%S")
    return templates


def create_preview_app(
    config: Config, campaign: str | None, *, host: str = "127.0.0.1"
) -> Starlette:
    """The preview app for the workspace of `config`.

    `campaign` (a slug or a folder) is the one the CLI opens; every campaign of the
    workspace can be previewed. On a loopback `host` only loopback Host headers are
    accepted, so a web page elsewhere cannot read drafts through DNS rebinding.
    """
    preview = Preview(config, campaign)
    allowed = [*LOOPBACK_HOSTS, host] if host in LOOPBACK_HOSTS else ["*"]
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
        exception_handlers={HTTPException: pages.refused, Exception: pages.crashed},
    )
    app.state.preview = preview
    app.state.templates = _templates(preview)
    app.state.public_templates = Environment(
        loader=FileSystemLoader(PUBLIC_TEMPLATES), autoescape=select_autoescape(default=True)
    )
    return app
