"""The preview's state: the workspace's campaigns, their latest builds, the sample
subscriber they are personalised for, and the watcher that rebuilds them on a save."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from campaign import compile as compiler
from campaign.audience import Recipient, Store
from campaign.compiled import Compiled
from campaign.config import CONFIG_FILE, Config, load_config
from campaign.db import connect
from campaign.errors import BuildError, CampaignError, Diagnostic, Location, UserError
from campaign.links import Links
from campaign.load import CAMPAIGN_FILE, shown_path
from campaign.message import Message
from campaign.personalise import Personaliser, list_id_for, sender_domain
from campaign.schedule import Schedule, format_local, load_schedules
from campaign.send.ledger import SendInfo, get_send
from campaign.web.watch import Broadcaster, Event, watch_paths

log = logging.getLogger("campaign.web.preview")

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


def has_database(config: Config) -> bool:
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
    if has_database(config):
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
    if not has_database(config):
        return records
    try:
        engine = connect(config.database_url)
        schedules = {s.campaign: s for s in load_schedules(engine)}
        for slug in slugs:
            records[slug] = (schedules.get(slug), get_send(engine, slug))
    except (SQLAlchemyError, CampaignError):
        log.warning("preview: could not read the schedules and sends", exc_info=True)
    return records
