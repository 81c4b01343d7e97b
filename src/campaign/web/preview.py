"""`campaign preview`: a local server that shows each campaign as a subscriber will see it.

Each campaign is built by the same `campaign.compile.build` a send uses and
personalised for a sample subscriber by the send engine's `Personaliser`, then
shown in iframes at desktop and phone widths. Saving a source file rebuilds it and
reloads the open pages (see `campaign.web.watch`).

Nothing clicked in a preview can touch a real subscriber: the links of the public
pages are pointed at this server's stand-ins (/preview-pages/...), and their tokens
are signed with a key that exists only in this process.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import secrets
import socket
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from time import perf_counter
from typing import Any

import uvicorn
from email_validator import EmailNotValidError
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from campaign import compile as compiler
from campaign import placeholders
from campaign.audience import Recipient, Store
from campaign.audience.models import checked_email
from campaign.compiled import Compiled
from campaign.config import CONFIG_FILE, Config, load_config
from campaign.db import connect
from campaign.errors import BuildError, CampaignError, Diagnostic, Location, UserError
from campaign.links import BadLink, Links
from campaign.load import CAMPAIGN_FILE, shown_path
from campaign.message import Message
from campaign.personalise import Personaliser, list_id_for, sender_domain
from campaign.preflight import preflight
from campaign.providers import hosted
from campaign.providers.base import Status
from campaign.schedule import Schedule, format_local, load_schedules
from campaign.send import send_test
from campaign.send.ledger import SendInfo, get_send
from campaign.web.public import MAX_FRIENDS, MAX_NOTE, masked
from campaign.web.watch import Broadcaster, Event, event_stream, watch_paths
from campaign.web.webcopy import web_copy

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates" / "preview"
PUBLIC_TEMPLATES = HERE / "templates"
"""The public site's own templates (campaign serve): the preview shows its pages with them."""
STATIC = HERE / "static" / "preview"

DESKTOP_WIDTH = 800
MOBILE_WIDTH = 375

PUBLIC_PAGES = ("archive", "forward", "preferences", "unsubscribe")
"""The public pages a message links to (see campaign.links); the preview has a stand-in for each."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

MADE_UP = Recipient(
    id=0,
    public_id="preview-sample",
    email="sam.sample@example.org",
    name="Sam Sample",
    fields={
        "email": "sam.sample@example.org",
        "name": "Sam Sample",
        "first_name": "Sam",
        "last_name": "Sample",
    },
)
"""The subscriber a preview is personalised for when the workspace has no audience yet."""


@dataclass(frozen=True)
class Build:
    """The outcome of building one campaign: a Compiled, or the diagnostics that stopped it."""

    slug: str
    compiled: Compiled | None
    diagnostics: tuple[Diagnostic, ...]
    finished: datetime
    seconds: float

    @property
    def ok(self) -> bool:
        return self.compiled is not None


@dataclass(frozen=True)
class Sample:
    """Who the preview is personalised for, and the list that person would get it through."""

    recipient: Recipient
    list_name: str
    made_up: bool
    topics: tuple[str, ...] = ()
    """The workspace's topics, offered on the preferences page."""


@dataclass(frozen=True)
class _PageSubscriber:
    """What the public pages' templates read of a subscriber."""

    name: str
    lists: frozenset[str]
    topics: frozenset[str] = frozenset()
    mailable: bool = True


@dataclass(frozen=True)
class Rendered:
    """A build personalised for the sample subscriber, exactly as it would be sent."""

    message: Message

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header the message goes out with, in the order a provider writes them."""
        message = self.message
        headers = [("From", message.from_), ("To", message.to), ("Subject", message.subject)]
        if message.reply_to:
            headers.append(("Reply-To", message.reply_to))
        return headers + list(message.headers.items())

    @property
    def size(self) -> int:
        return len(self.message.html.encode("utf-8"))


def _has_database(config: Config) -> bool:
    """False for an SQLite file that does not exist yet: previewing must never create one."""
    url = config.database_url
    prefix = "sqlite:///"
    return (
        not url.startswith(prefix)
        or url == prefix + ":memory:"
        or Path(url[len(prefix) :]).is_file()
    )


def find_sample(config: Config) -> Sample:
    """The first subscriber of the first list that has one, else a made-up subscriber."""
    if _has_database(config):
        try:
            store = Store.open(config)
            topics = tuple(name for name, _count in store.topics())
            for list_name, count in store.lists():
                if count:
                    for recipient in store.recipients(list_name, chunk=1):
                        return Sample(recipient, list_name, made_up=False, topics=topics)
        except (SQLAlchemyError, CampaignError):
            log.warning(
                "preview: could not read a sample subscriber from the database", exc_info=True
            )
    return Sample(MADE_UP, "newsletter", made_up=True)


_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_LIGHT_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
_OPTS_INTO_DARK = re.compile(r"color-scheme[^>;]*dark", re.IGNORECASE)


def emulate_dark(html: str) -> str:
    """The email as a mail client in dark mode would show it.

    A page cannot set prefers-color-scheme for an iframe (Chromium ignores the
    iframe's color-scheme for that), so the preview rewrites the email's own media
    queries: `(prefers-color-scheme: dark)` always matches, `light` never does. If
    the email opts into dark mode (a color-scheme naming dark), the page's own
    colour scheme is set to dark too, as a browser would.
    """
    html = _LIGHT_QUERY.sub("(max-width: 0px)", _DARK_QUERY.sub("(min-width: 0px)", html))
    if _OPTS_INTO_DARK.search(html):
        style = "<style>:root{color-scheme:dark}</style>"
        html, count = _HEAD_END.subn(style + "</head>", html, count=1)
        if not count:
            html = style + html
    return html


def _open_links_outside(html: str) -> str:
    """Links clicked inside the preview iframe open in a new tab, not inside the small frame."""
    base = '<base target="_blank">'
    html, count = re.subn(
        r"<head(\s[^>]*)?>", lambda m: m.group(0) + base, html, count=1, flags=re.IGNORECASE
    )
    return html if count else base + html


_MAIN = re.compile(r"<main\b[^>]*>", re.IGNORECASE)
_PUBLIC_LINK = re.compile(r"/(archive|forward|preferences|unsubscribe)/")


class Preview:
    """The state behind the app: the workspace's campaigns, their latest builds, the watcher."""

    def __init__(self, config: Config, campaign: str | None) -> None:
        self.config = config
        self.config_error: Diagnostic | None = None
        self.broadcaster = Broadcaster()
        self.generation = 0
        """Bumped by every rebuild the watcher makes; a page holding an older one is stale."""
        self.builds: dict[str, Build] = {}
        self.last_good: dict[str, Build] = {}
        self.extra: dict[str, Path] = {}
        """Campaign folders outside campaigns/ named on the command line, by slug."""
        self.start_slug = self._resolve(campaign) if campaign else None
        self._key = secrets.token_urlsafe(32)
        self.links = Links(self._key, config.public_base_url)
        """Real-length URLs (so sizes are true), signed with a key that dies with this process."""
        self.sample: Sample | None = None
        self._rendered: dict[str, tuple[Build, Rendered]] = {}
        self._lock: asyncio.Lock | None = None
        self._stop = threading.Event()
        self._watcher: asyncio.Task[None] | None = None

    # ----- campaigns and builds

    def _resolve(self, campaign: str) -> str:
        """The slug of the campaign named on the command line (a slug or a folder)."""
        try:
            folder = compiler.campaign_folder(self.config, campaign)
        except UserError:
            folder = None
        if folder is None or not (folder / CAMPAIGN_FILE).is_file():
            raise UserError(
                f"no campaign {campaign!r}: give a folder name under campaigns/ "
                f"or a path holding {CAMPAIGN_FILE}"
            )
        if folder.parent != self.config.campaigns_dir.resolve():
            self.extra[folder.name] = folder
        return folder.name

    def folders(self) -> dict[str, Path]:
        """Every campaign folder by slug, read afresh: campaigns come and go while previewing."""
        found: dict[str, Path] = {}
        if self.config.campaigns_dir.is_dir():
            for entry in sorted(self.config.campaigns_dir.iterdir()):
                if (entry / CAMPAIGN_FILE).is_file():
                    found[entry.name] = entry.resolve()
        return found | self.extra

    def folder(self, slug: str) -> Path:
        """The folder of `slug`, else 404: only listed names resolve, never other files."""
        folder = self.folders().get(slug)
        if folder is None:
            raise HTTPException(404, f"No campaign {slug!r} in this workspace")
        return folder

    def _build_now(self, slug: str, folder: Path) -> Build:
        started = perf_counter()
        compiled: Compiled | None = None
        diagnostics: tuple[Diagnostic, ...] = ()
        try:
            compiled = compiler.build(self.config, folder)
        except BuildError as exc:
            diagnostics = tuple(exc.diagnostics)
        except UserError as exc:
            diagnostics = (Diagnostic("error", exc.message, exc.location),)
        except Exception as exc:  # a bug in a build must show in the page, not end the server
            log.exception("preview: building %s crashed", slug)
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = Location(frame.filename, frame.lineno)
            diagnostics = (
                Diagnostic("error", f"internal error: {type(exc).__name__}: {exc}", where),
            )
        return Build(slug, compiled, diagnostics, datetime.now(UTC), perf_counter() - started)

    async def build(self, slug: str) -> Build:
        """The latest build of `slug`, building it now if the last one is out of date."""
        folder = self.folder(slug)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one build at a time, off the event loop
            if self.sample is None:
                self.sample = await asyncio.to_thread(find_sample, self.config)
            if slug not in self.builds:
                result = await asyncio.to_thread(self._build_now, slug, folder)
                self.builds[slug] = result
                if result.ok:
                    self.last_good[slug] = result
            return self.builds[slug]

    def shown(self, slug: str) -> Build | None:
        """What a page shows: the latest build, or the last good one while the source is broken."""
        build = self.builds.get(slug)
        return build if build is not None and build.ok else self.last_good.get(slug)

    # ----- watching

    def start_watching(self) -> None:
        """Start the watcher on the running loop unless it runs (lazily: no lifespan needed)."""
        if (self._watcher is None or self._watcher.done()) and not self._stop.is_set():
            workspace = self.config.workspace
            paths = [
                self.config.campaigns_dir,
                self.config.layouts_dir,
                workspace / CONFIG_FILE,
                *self.extra.values(),
            ]
            self._watcher = asyncio.get_running_loop().create_task(
                watch_paths(paths, self.changed, self._stop)
            )

    def close(self) -> None:
        """Stop watching, end the pages' event streams (on the server's loop, or after it)."""
        self._stop.set()
        self.broadcaster.close()

    def affected(self, paths: set[Path]) -> set[str]:
        """The campaigns a change to `paths` may alter."""
        campaigns = self.config.campaigns_dir.resolve()
        layouts = self.config.layouts_dir.resolve()
        slugs: set[str] = set()
        for path in (p.resolve() for p in paths):
            if path == self.config.workspace.resolve() / CONFIG_FILE:
                slugs |= set(self.builds) | set(self.folders())
            elif path.is_relative_to(campaigns) and path != campaigns:
                slugs.add(path.relative_to(campaigns).parts[0])
            elif path.is_relative_to(layouts) and path != layouts:
                layout = path.relative_to(layouts).parts[0]
                slugs |= {
                    slug
                    for slug, build in self.builds.items()
                    if build.compiled is None or build.compiled.layout == layout
                }
            slugs |= {slug for slug, folder in self.extra.items() if path.is_relative_to(folder)}
        return slugs

    async def changed(self, paths: set[Path]) -> None:
        """Rebuild what a save affects (at once if open in a page), then tell the pages."""
        if any(p.resolve() == self.config.workspace.resolve() / CONFIG_FILE for p in paths):
            self.reload_config()
        slugs = self.affected(paths)
        for slug in slugs:
            self.builds.pop(slug, None)
        existing = self.folders()
        for slug in sorted(slugs & self.broadcaster.topics & set(existing)):
            if (build := await self.build(slug)).ok:
                self.render(build)  # ready before the pages ask
        self.generation += 1
        self.broadcaster.publish(
            Event("build", {"generation": self.generation, "campaigns": sorted(slugs)})
        )

    def reload_config(self) -> None:
        """Read campaign.toml again; when it is broken, keep the last good settings and say so."""
        try:
            self.config = load_config(self.config.workspace)
        except UserError as exc:
            self.config_error = Diagnostic(
                "error", f"{exc.message} (the preview keeps the previous settings)", exc.location
            )
            return
        self.config_error = None
        self.links = Links(self._key, self.config.public_base_url)
        self.sample = None
        self._rendered.clear()

    # ----- what the pages show

    def render(self, build: Build) -> Rendered:
        """`build` as the sample subscriber gets it, made once per build."""
        cached = self._rendered.get(build.slug)
        if cached is not None and cached[0] is build:
            return cached[1]
        assert build.compiled is not None and self.sample is not None
        compiled = build.compiled
        list_id = list_id_for(self.config, self.sample.list_name, sender_domain(compiled.from_))
        personaliser = Personaliser(
            compiled,
            self.links,
            list_id=list_id,
            unsubscribe_mailto=self.config.send.unsubscribe_mailto,
        )
        rendered = Rendered(
            personaliser.message(self.sample.recipient, send_id=f"preview-{compiled.slug}")
        )
        self._rendered[build.slug] = (build, rendered)
        return rendered

    def for_browser(self, build: Build, text: str, base: str) -> str:
        """`text` with the public site's images and pages pointed at this server's stand-ins."""
        public = re.escape(self.links.base_url)
        text = re.sub(public + "/assets/", f"{base}/campaigns/{build.slug}/assets/", text)
        return re.sub(
            public + _PUBLIC_LINK.pattern, lambda m: f"{base}/preview-pages/{m.group(1)}/", text
        )

    def where(self, location: Location | None) -> str:
        """A diagnostic's place as the user knows it: relative to the workspace when inside it."""
        if location is None:
            return ""
        path = Path(location.file)
        shown = shown_path(path, self.config.workspace) if path.is_absolute() else str(path)
        return f"{shown}:{location.line}" if location.line is not None else shown

    def status(self, record: Record, build: Build) -> str:
        """A campaign's send or schedule, and whether its source changed since it was frozen."""
        schedule, send = record
        if send is not None:
            when = send.finished_at or send.started_at or send.created_at
            return f"send {send.status} · {format_local(when, self.config.tz)}"
        if schedule is None:
            return ""
        text = f"{schedule.state} · {format_local(schedule.send_at, self.config.tz)}"
        if build.compiled is not None and build.compiled.source_hash != schedule.source_hash:
            text += " · source changed since scheduled"
        return text

    async def records(self, slugs: list[str]) -> dict[str, Record]:
        return await asyncio.to_thread(find_records, self.config, slugs)


Record = tuple[Schedule | None, SendInfo | None]


def find_records(config: Config, slugs: list[str]) -> dict[str, Record]:
    """The schedule and the send of each campaign, from the workspace's database when it has one."""
    records: dict[str, Record] = {slug: (None, None) for slug in slugs}
    if not _has_database(config):
        return records
    try:
        engine = connect(config.database_url)
        schedules = {s.campaign: s for s in load_schedules(engine)}
        for slug in slugs:
            records[slug] = (schedules.get(slug), get_send(engine, slug))
    except (SQLAlchemyError, CampaignError):
        log.warning("preview: could not read the schedules and sends", exc_info=True)
    return records


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def create_preview_app(
    config: Config, campaign: str | None, *, host: str = "127.0.0.1"
) -> Starlette:
    """The preview app for the workspace of `config`.

    `campaign` (a slug or a folder) is the one the CLI opens; every campaign of the
    workspace can be previewed. On a loopback `host` only loopback Host headers are
    accepted, so a web page elsewhere cannot read drafts through DNS rebinding.
    """
    preview = Preview(config, campaign)
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    templates.globals.update(
        gmail_clip=compiler.MAX_HTML_BYTES, desktop_width=DESKTOP_WIDTH, mobile_width=MOBILE_WIDTH
    )
    public_templates = Environment(
        loader=FileSystemLoader(PUBLIC_TEMPLATES), autoescape=select_autoescape(default=True)
    )
    templates.filters["where"] = preview.where
    templates.filters["merge_tags"] = placeholders.shown
    templates.filters["kb"] = lambda size: f"{size / 1024:.1f} KB"
    templates.filters["clock"] = lambda when: when.astimezone().strftime("%H:%M:%S")

    def page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
        preview.start_watching()
        context.setdefault("slug", None)
        context.update(
            generation=preview.generation,
            config_error=preview.config_error,
            workspace=preview.config.workspace,
        )
        return HTMLResponse(templates.get_template(name).render(context), status_code=code)

    async def index(request: Request) -> Response:
        slugs = list(preview.folders())
        records = await preview.records(slugs)
        rows = []
        for slug in slugs:
            build = await preview.build(slug)
            rows.append((build, preview.status(records[slug], build)))
        return page("index.html", rows=rows, start=preview.start_slug)

    async def campaign_page(request: Request) -> Response:
        slug = request.path_params["slug"]
        build = await preview.build(slug)
        shown = preview.shown(slug)
        rendered = preview.render(shown) if shown else None
        records = await preview.records([slug])
        return page(
            "campaign.html",
            slug=slug,
            build=build,
            shown=shown,
            rendered=rendered,
            text=preview.for_browser(shown, rendered.message.text, _base(request))
            if shown and rendered
            else "",
            sample=preview.sample,
            scheme="dark" if request.cookies.get("preview_scheme") == "dark" else "light",
            status=preview.status(records[slug], build),
        )

    async def email_html(request: Request, slug: str) -> HTMLResponse:
        await preview.build(slug)
        shown = preview.shown(slug)
        if shown is None:
            raise HTTPException(404, f"{slug} has not built yet")
        html = _open_links_outside(
            preview.for_browser(shown, preview.render(shown).message.html, _base(request))
        )
        if request.query_params.get("scheme") == "dark":
            html = emulate_dark(html)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def email(request: Request) -> Response:
        return await email_html(request, request.path_params["slug"])

    async def asset(request: Request) -> Response:
        slug, name = request.path_params["slug"], request.path_params["name"]
        await preview.build(slug)
        shown = preview.shown(slug)
        compiled = shown.compiled if shown else None
        if compiled is None:
            raise HTTPException(404, f"{slug} has not built yet")
        for item in compiled.assets:
            source = Path(item.path)
            if item.name == name and source.is_file():
                # The name holds a hash of the content: the browser may keep it.
                return FileResponse(source, headers={"Cache-Control": "max-age=86400, immutable"})
        raise HTTPException(404, f"No image {name!r} in {slug}")

    async def events(request: Request) -> Response:
        preview.start_watching()
        topic = request.query_params.get("campaign") or None
        return event_stream(
            preview.broadcaster, topic, Event("hello", {"generation": preview.generation})
        )

    async def public_page(request: Request) -> Response:
        """The public site's page as the sample subscriber sees it; its forms change nothing."""
        kind, rest = request.path_params["page"], request.path_params["rest"]
        if kind == "archive":
            await preview.build(rest)
            shown = preview.shown(rest)
            if shown is None or shown.compiled is None:
                raise HTTPException(404, f"{rest} has not built yet")
            copy = web_copy(shown.compiled, preview.links.view_url(rest))
            return HTMLResponse(preview.for_browser(shown, copy.html, _base(request)))
        if kind not in PUBLIC_PAGES:
            raise HTTPException(404, "No such page")
        try:
            claims = preview.links.verify(kind, rest)
        except BadLink:
            raise HTTPException(404, "This link was not made by this preview") from None
        sample = preview.sample
        assert sample is not None  # a preview link exists only once a page was rendered
        if request.method == "POST":
            return page("page.html", kind=kind, claims=claims, sample=sample)
        await preview.build(claims.campaign)
        shown = preview.shown(claims.campaign)
        if shown is None or shown.compiled is None:
            raise HTTPException(404, f"{claims.campaign} has not built yet")
        config, base = preview.config, _base(request)
        context: dict[str, Any] = {
            "organisation": config.organisation,
            "colour": config.organisation.colour,
            "base_url": base,
            "address": masked(sample.recipient.email),
            "action": request.url.path,
            "csrf": "",
        }
        if kind == "unsubscribe":
            link = preview.links.url("preferences", sample.recipient.public_id, claims.campaign)
            context |= {"state": "subscribed", "this_list": sample.list_name, "done": ""}
            context["preferences_url"] = preview.for_browser(shown, link, base)
        elif kind == "preferences":
            link = preview.links.url("unsubscribe", sample.recipient.public_id, claims.campaign)
            subscriber = _PageSubscriber(sample.recipient.name, frozenset({sample.list_name}))
            fields = sample.recipient.fields
            context |= {
                "subscriber": subscriber,
                "names": (fields.get("first_name", ""), fields.get("last_name", "")),
                "lists": [sample.list_name],
                "topics": list(sample.topics),
            }
            context |= {"saved": False, "unsubscribe_url": preview.for_browser(shown, link, base)}
        else:
            copy = web_copy(shown.compiled, preview.links.view_url(claims.campaign))
            context |= {"copy": copy, "max_friends": MAX_FRIENDS, "max_note": MAX_NOTE}
            context |= {"errors": [], "values": {}}
        html = public_templates.get_template(f"{kind}.html").render(context)
        banner = templates.get_template("banner.html").render(
            kind=kind, claims=claims, sample=sample
        )
        return HTMLResponse(_MAIN.sub(lambda m: m.group(0) + banner, html, count=1))

    async def send_test(request: Request) -> Response:
        slug = request.path_params["slug"]
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != _base(request):
            return JSONResponse(
                {"ok": False, "message": "Refused: the form was not sent from this preview."}, 403
            )
        form = await request.form()
        addresses = [a for a in re.split(r"[\s,;]+", str(form.get("addresses", ""))) if a]
        if not addresses:
            return JSONResponse({"ok": False, "message": "Type at least one address."}, 400)
        build = await preview.build(slug)
        if build.compiled is None:
            return JSONResponse(
                {"ok": False, "message": f"{slug} does not build: fix it first."}, 409
            )
        try:
            message = await send_test_message(preview.config, build.compiled, addresses)
        except CampaignError as exc:
            return JSONResponse({"ok": False, "message": str(exc)}, 400)
        except Exception as exc:  # the form answers in JSON whatever happens
            log.exception("preview: sending a test failed")
            return JSONResponse(
                {"ok": False, "message": f"Internal error: {type(exc).__name__}: {exc}"}, 500
            )
        return JSONResponse({"ok": True, "message": message})

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page("error.html", code=exc.status_code, detail=exc.detail)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.error("preview: %s failed", request.url.path, exc_info=exc)
        detail = escape(f"{type(exc).__name__}: {exc}")  # no template: it may be what failed
        return HTMLResponse(
            f"<!doctype html><title>Internal error</title><h1>Internal error</h1>"
            f"<pre>{detail}</pre>",
            500,
        )

    allowed = [*LOOPBACK_HOSTS, host] if host in LOOPBACK_HOSTS else ["*"]
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/events", events),
            Route("/campaigns/{slug}", campaign_page),
            Route("/campaigns/{slug}/email.html", email),
            Route("/campaigns/{slug}/assets/{name}", asset),
            Route("/campaigns/{slug}/send-test", send_test, methods=["POST"]),
            Route("/preview-pages/{page}/{rest}", public_page, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
        exception_handlers={HTTPException: refused, Exception: crashed},
    )
    app.state.preview = preview
    return app


async def send_test_message(config: Config, compiled: Compiled, addresses: list[str]) -> str:
    """Send `compiled` to `addresses` by `campaign send --test`'s path; what to tell the user."""
    checked: list[str] = []
    for address in addresses:
        try:
            checked.append(checked_email(address))
        except EmailNotValidError as exc:
            raise UserError(f"{address!r} is not an email address: {exc}") from None
    report = await preflight(
        config, compiled, config.campaigns_dir / compiled.slug, engine=connect(config.database_url)
    )
    report.raise_for_errors()
    service = hosted(config)
    if service is not None:
        return await service.send(compiled, test_addresses=checked, at=None)
    results = await send_test(config, compiled, checked)
    refused = [
        f"{result.status}: {result.reason}"
        for result in results
        if result.status != Status.ACCEPTED
    ]
    if refused:
        raise UserError(
            f"{config.provider.name} did not take {len(refused)} of {len(results)}: "
            + "; ".join(refused)
        )
    ids = ", ".join(result.provider_id for result in results if result.provider_id)
    return f"Sent a test to {', '.join(checked)} through {config.provider.name}" + (
        f" ({ids})." if ids else "."
    )


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
