"""Web writes are never lost: a busy database is retried, then spooled and applied later;
SQLite's busy timeout is on every connection; old webhook ids are pruned."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from campaign.audience import Store, Subscriber
from campaign.db import BUSY_TIMEOUT_MS, connect
from campaign.links import Links
from campaign.web import durable
from campaign.web.tables import webhook_events
from tests.web.test_pages import ONE_CLICK
from tests.web.test_webhooks import post, postmark, postmark_bounce


def test_every_sqlite_connection_waits_longer_than_any_write(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'busy.db'}")
    seen: list[tuple[int, str]] = []

    def read() -> None:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            seen.append(
                (
                    pragma("PRAGMA busy_timeout").scalar_one(),
                    pragma("PRAGMA journal_mode").scalar_one(),
                )
            )

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == [(BUSY_TIMEOUT_MS, "wal")] * 8
    assert BUSY_TIMEOUT_MS >= 30_000


@pytest.fixture
def locked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every audience write fails with "database is locked" (until the list is cleared)."""
    busy = ["unsubscribe", "record_bounce"]
    monkeypatch.setattr(durable, "WRITE_DEADLINE", 0.2)
    for name in list(busy):
        real = getattr(Store, name)

        def failing(
            self: Store, *args: object, _real: object = real, _name: str = name, **kw: object
        ) -> None:
            if _name in busy:
                raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
            _real(self, *args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(Store, name, failing)
    return busy


async def test_a_one_click_unsubscribe_meeting_a_lock_is_spooled_then_applied(
    client: httpx.AsyncClient, store: Store, ana: Subscriber, links: Links, locked: list[str]
) -> None:
    token = links.token("unsubscribe", ana.public_id, "c")
    response = await client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )
    assert response.status_code == 200
    site = client._transport.app.state.site  # type: ignore[attr-defined]
    spool = durable.spool_of(site)
    assert spool.path.stat().st_mode & 0o777 == 0o600
    assert store.get(ana.public_id).status == "subscribed"  # type: ignore[union-attr]
    durable.upkeep(site, prune=False)  # still locked: kept
    assert spool.path.exists()
    locked.clear()
    durable.upkeep(site, prune=False)
    assert not spool.path.exists()
    assert store.get(ana.public_id).status == "unsubscribed"  # type: ignore[union-attr]


async def test_a_webhook_meeting_a_lock_is_answered_and_applied_once(
    client: httpx.AsyncClient, store: Store, ana: Subscriber, locked: list[str]
) -> None:
    for _ in range(2):  # the service's retry spools a second copy: applied once all the same
        response = await post(client, "postmark", postmark(postmark_bounce(ana.email)))
        assert response.status_code == 200
        assert response.json() == {"recorded": 0, "replayed": 0, "queued": 1}
    locked.clear()
    durable.upkeep(client._transport.app.state.site, prune=False)  # type: ignore[attr-defined]
    assert store.find(ana.email).status == "bounced"  # type: ignore[union-attr]
    assert [e["kind"] for e in store.history(ana.email)].count("bounce_hard") == 1


def test_old_webhook_ids_are_pruned(store: Store) -> None:
    now = datetime.now(UTC)
    with store.engine.begin() as connection:
        connection.execute(
            insert(webhook_events),
            [
                {"service": "postmark", "event_id": "old", "received_at": now - timedelta(days=31)},
                {"service": "postmark", "event_id": "new", "received_at": now - timedelta(days=1)},
            ],
        )
    assert durable.prune_webhook_events(store.engine) == 1
    with store.engine.connect() as connection:
        left = connection.execute(select(webhook_events.c.event_id)).scalars().all()
        assert left == ["new"]
        assert (
            connection.execute(select(func.count()).select_from(webhook_events)).scalar_one() == 1
        )
