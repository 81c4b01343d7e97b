"""Helpers for the send tests: a small compiled campaign, settings, a populated audience."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.audience.tables import utcnow
from campaign.compiled import Compiled
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.send.lease import send_leases
from tests.conftest import SECRET_KEY
from tests.servers.postmark import TOKEN

HTML = (
    "<html><head><title>t</title></head><body>"
    "<p>Hello {{{field:first_name}}} ({{{field:organisation}}})</p>"
    '<p><a href="{{{link:view}}}">View in browser</a> | <a href="{{{link:forward}}}">Forward</a></p>'
    "<p>Café = crème brûlée</p>"
    '<p><a href="{{{link:preferences}}}">Preferences</a> <a href="{{{link:unsubscribe}}}">Unsubscribe</a></p>'
    "</body></html>"
)
TEXT = (
    "Hello {{{field:first_name}}}\n\nView: {{{link:view}}}\nUnsubscribe: {{{link:unsubscribe}}}\n"
)


def compiled(
    slug: str = "c1",
    *,
    html: str = HTML,
    text: str = TEXT,
    subject: str = "News for you",
    **changes: Any,
) -> Compiled:
    fields: dict[str, Any] = dict(
        slug=slug,
        subject=subject,
        preheader="",
        from_="Example Org <news@news.example.org>",
        reply_to="reply@example.org",
        layout="newsletter",
        html=html,
        text=text,
        placeholders=frozenset(),
        source_hash="hash-" + slug,
        built_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    fields.update(changes)
    return Compiled(**fields)


def make_config(
    root: Path, db_url: str, *, provider: str = "outbox", toml: str = "", **env: str
) -> Config:
    """A workspace at `root` with campaign.toml (its [provider] and any extra TOML) and secrets."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "campaign.toml").write_text(
        f'public_base_url = "https://news.example.org"\n[database]\nurl = "{db_url}"\n'
        f'[provider]\nname = "{provider}"\n{toml}'
    )
    environ = {"CAMPAIGN_SECRET_KEY": SECRET_KEY, "POSTMARK_SERVER_TOKEN": TOKEN, **env}
    return load_config(root, environ={k: v for k, v in environ.items() if v})


def populate(
    db_url: str, tmp: Path, count: int, list_name: str = "news", **extra: Callable[[int], str]
) -> Store:
    """`count` subscribers user<i>@example.com on `list_name`, imported from a CSV like a user would."""
    path = tmp / f"{list_name}-{count}.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "organisation", *extra])
        for i in range(count):
            writer.writerow(
                [
                    f"user{i}@example.com",
                    f"First{i}",
                    "Last",
                    f"Org {i}",
                    *(f(i) for f in extra.values()),
                ]
            )
    store = Store(connect(db_url))
    import_csv(store, path, list_name)
    return store


@pytest.fixture
def fast_settings() -> str:
    """[send] for tests: tiny backoff, so retries take milliseconds."""
    return "[send]\nbackoff_seconds = 0.02\nbackoff_max_seconds = 0.1\n"


def wait_for_leases_to_run_out(database_url: str, seconds: float) -> None:
    """Poll until no sender holds a live lease (a killed one's runs out after its length)."""
    engine = connect(database_url)
    deadline = time.monotonic() + seconds
    while True:
        with engine.connect() as c:
            until = c.execute(select(send_leases.c.lease_until)).scalars().all()
        if all(when < utcnow() for when in until):
            return
        assert time.monotonic() < deadline, "a killed sender's lease never ran out"
        time.sleep(0.02)
