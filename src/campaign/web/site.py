"""What every page and webhook of `campaign serve` shares: settings, database, links, templates.

One `Site` is built by `create_app` and kept on `app.state.site`. The audience
store and the send ledger are the same functions the sender uses; this module
only adapts them to what the pages show.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from campaign import mime, providers
from campaign.audience import Store
from campaign.audience.models import email_hash
from campaign.audience.tables import suppressions
from campaign.config import Config
from campaign.errors import CampaignError
from campaign.links import Links
from campaign.message import Message
from campaign.providers import Status
from campaign.send import ledger
from campaign.web.csrf import CSRF
from campaign.web.webcopy import WebCopy, impersonal, web_copy
from campaign.web.webhooks import Context

log = logging.getLogger("campaign.web")

TEMPLATES = Path(__file__).parent / "templates"
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    slug: str
    subject: str
    preheader: str
    sent_at: datetime


class Site:
    def __init__(
        self, config: Config, engine: Engine, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.transport = transport
        """Outbound HTTP (the forward's mail service, SNS certificates): tests point it at loopback."""
        self.links = Links(
            config.secret_key, config.public_base_url, max_age_days=config.web.token_max_age_days
        )
        self.csrf = CSRF(config.secret_key)
        self.store = Store(engine)
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.globals.update(
            organisation=config.organisation,
            colour=config.organisation.colour
            if _COLOUR.match(config.organisation.colour)
            else "#1d4f91",
            base_url=config.public_base_url,
        )
        self.webhooks = Context(
            env=config.env, http=httpx.AsyncClient(transport=transport, timeout=10.0), engine=engine
        )
        self._sent_cache: dict[str, tuple[ledger.SendInfo, WebCopy]] = {}
        self._cache_lock = threading.Lock()
        self._hash_key = hashlib.sha256(b"campaign.web.hash:" + config.secret_key.encode()).digest()

    async def db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking database call off the event loop."""
        return await run_in_threadpool(function, *args, **kwargs)

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def message(self, request: Request, status_code: int, title: str, text: str) -> Response:
        """A plain page that says one thing (errors, confirmations)."""
        return self.page(request, "message.html", status_code, title=title, text=text)

    def keyed_hash(self, kind: str, value: str) -> str:
        """A keyed hash for the forward log: counts per person or IP without keeping either."""
        return hmac.new(self._hash_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    # The archive, from the send ledger: what went out, frozen as it was built.

    def archive(self) -> list[ArchiveEntry]:
        """Every campaign whose send has begun, newest first."""
        return [
            ArchiveEntry(
                s.campaign,
                impersonal(s.compiled.subject),
                impersonal(s.compiled.preheader),
                s.started_at or s.created_at,
            )
            for s in ledger.sent_campaigns(self.engine)
        ]

    def _sent(self, slug: str) -> tuple[ledger.SendInfo, WebCopy] | None:
        """A sent campaign and its web copy. Both are frozen once the send has begun, so
        they are kept after the first request (parsing a 30 KB campaign costs milliseconds)."""
        cached = self._sent_cache.get(slug)
        if cached is not None:
            return cached
        found = ledger.get_send(self.engine, slug) if _SLUG.match(slug) else None
        if found is None or found.started_at is None:
            return None
        entry = (found, web_copy(found.compiled, self.links.view_url(slug)))
        with self._cache_lock:
            if len(self._sent_cache) >= 64:
                self._sent_cache.pop(next(iter(self._sent_cache)))
            self._sent_cache[slug] = entry
        return entry

    def web_copy(self, slug: str) -> WebCopy | None:
        """The impersonal copy of a sent campaign; None for one never sent."""
        sent = self._sent(slug)
        return None if sent is None else sent[1]

    def campaign_list(self, slug: str) -> str | None:
        """The list a campaign was sent to."""
        sent = self._sent(slug)
        return sent[0].list_name if sent is not None else None

    def suppressed(self, email: str) -> bool:
        """Whether `email` must never be mailed (unsubscribed, bounced, complained, erased)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(suppressions.c.id).where(suppressions.c.email_hash == email_hash(email))
            ).first()
        return found is not None

    async def send(self, messages: list[Message]) -> int:
        """Send through the configured mail service; the number of messages not accepted."""
        if not messages:
            return 0
        failed = 0
        async with providers.create(self.config, transport=self.transport) as provider:
            for start in range(0, len(messages), provider.max_batch):
                batch = messages[start : start + provider.max_batch]
                if provider.wants_raw:
                    batch = [replace(m, raw=mime.render(m)) for m in batch]
                try:
                    results = await provider.send(batch)
                except CampaignError as exc:
                    log.warning("forward not sent: %s", exc)
                    return len(messages)
                failed += sum(1 for r in results if r.status is not Status.ACCEPTED)
        return failed

    async def aclose(self) -> None:
        await self.webhooks.http.aclose()
