"""How events become a report's counts: once per delivery and kind, hard over soft, SMTP
refusals as hard bounces rather than failures, unsubscribes attributed to their campaign."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from campaign.activity import campaign_events, delivery_of, note_by_campaign
from campaign.audience import Store
from campaign.db import connect
from campaign.providers import Result, Status
from campaign.reports import all_reports, report
from campaign.send.engine import record_bounces
from campaign.send.ledger import Queued, deliveries, get_send
from campaign.web.webhooks import Event, record
from tests.web.conftest import SLUG, make_config, send_example


async def sent(workspace: Path, db_url: str) -> tuple[Store, dict[str, str]]:
    """The example sent to Ana and Bob; their send ids by address."""
    config = make_config(workspace, db_url)
    store = Store(connect(config.database_url))
    store.subscribe("ana@example.org", list_name="newsletter", source="test")
    await send_example(config, store)
    with store.engine.connect() as connection:
        rows = connection.execute(deliveries.select()).all()
    return store, {row.email: row.send_id for row in rows}


def event(n: int, kind: str, email: str, send_id: str, *, hard: bool = False) -> Event:
    return Event("postmark", f"e{n}", kind, email, hard=hard, send_id=send_id)  # type: ignore[arg-type]


async def test_each_delivery_counts_once_per_kind_and_hard_wins(
    workspace: Path, db_url: str
) -> None:
    store, ids = await sent(workspace, db_url)
    ana, bob = ids["ana@example.org"], ids["bob@example.org"]
    outcome = record(
        store.engine,
        [
            event(1, "delivered", "ana@example.org", ana),
            event(2, "delivered", "ana@example.org", ana),  # the service said it twice
            event(3, "bounced", "bob@example.org", bob),  # soft, then hard: one hard bounce
            event(4, "bounced", "bob@example.org", bob, hard=True),
            event(5, "unsubscribed", "ana@example.org", ana),
        ],
        store,
    )
    assert outcome.recorded == 5
    found = report(store.engine, SLUG)
    assert found is not None
    assert (found.delivered, found.bounced, found.bounced_hard, found.bounced_soft) == (1, 1, 1, 0)
    # The person used the page too: still one unsubscribe from this campaign.
    ana_id = store.find("ana@example.org")
    assert ana_id is not None
    note_by_campaign(store.engine, SLUG, "unsubscribed", ana_id.id)
    note_by_campaign(store.engine, "never-sent", "unsubscribed", ana_id.id)  # nothing to count
    found = report(store.engine, SLUG)
    assert found is not None and found.unsubscribed == 1
    # An unsubscribe by mail (the mailto's token names campaign and person) finds the delivery.
    assert delivery_of(store.engine, SLUG, ana_id.id) == ana
    assert delivery_of(store.engine, "never-sent", ana_id.id) is None
    assert found.rates["bounced"] == 50.0 and found.rates["delivered"] == 50.0


async def test_smtp_refusals_are_hard_bounces_not_failures(workspace: Path, db_url: str) -> None:
    store, ids = await sent(workspace, db_url)
    bob = ids["bob@example.org"]
    with store.engine.begin() as connection:  # as the engine writes a 5xx refusal
        connection.execute(
            update(deliveries).where(deliveries.c.send_id == bob).values(status="failed")
        )
    queued = Queued(bob, 2, "bob@example.org", "p", "Bob", {}, 1)
    record_bounces(
        store.engine, [queued], [Result(bob, Status.BOUNCED, reason="550 5.1.1 no such user")]
    )
    found = report(store.engine, SLUG)
    assert found is not None
    assert (found.sent, found.failed, found.bounced, found.bounced_hard) == (1, 0, 1, 1)


async def test_forwards_and_the_timeline_by_day(workspace: Path, db_url: str) -> None:
    store, ids = await sent(workspace, db_url)
    note_by_campaign(store.engine, SLUG, "forwarded", None)
    note_by_campaign(store.engine, SLUG, "forwarded", None)
    record(store.engine, [event(1, "delivered", "ana@example.org", ids["ana@example.org"])], store)
    info = get_send(store.engine, SLUG)
    assert info is not None and info.started_at is not None
    with store.engine.begin() as connection:  # the delivery reported two days later
        connection.execute(
            update(campaign_events)
            .where(campaign_events.c.kind == "delivered")
            .values(at=info.started_at + timedelta(days=2, hours=1))
        )
    found = report(store.engine, SLUG)
    assert found is not None and found.forwarded == 2
    assert [day.delivered for day in found.timeline] == [0, 0, 1, 0, 0, 0, 0]
    assert [r.campaign for r in all_reports(store.engine)] == [SLUG]
