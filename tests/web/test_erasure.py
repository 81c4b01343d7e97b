"""`subscribers delete` erases the address from every table, the send ledger included."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine, inspect, select, text

from campaign.audience import Store, Subscriber
from campaign.audience.tables import subscribers
from campaign.compile import build
from campaign.config import Config
from campaign.send import ledger
from tests.conftest import SECRET_KEY
from tests.web.conftest import SLUG
from tests.web.test_webhooks import post, postmark, postmark_bounce


def dump(engine: Engine) -> str:
    """Every row of every table, as one lowercase text."""
    with engine.connect() as connection:
        names = inspect(connection).get_table_names()
        return "\n".join(
            repr(row).lower()
            for name in names
            for row in connection.execute(text(f'SELECT * FROM "{name}"'))
        )


async def test_delete_leaves_the_address_in_no_table(
    client: httpx.AsyncClient, store: Store, ana: Subscriber, sent: str
) -> None:
    d = ledger.deliveries
    with store.engine.connect() as connection:
        send_id = connection.execute(select(d.c.send_id).where(d.c.email == ana.email)).scalar_one()
    bounce = postmark_bounce(ana.email, "SoftBounce")
    bounce["Metadata"] = {"send_id": send_id}
    bounce["Description"] = bounce["Details"] = f"452 mailbox of {ana.email.upper()} is full"
    assert (await post(client, "postmark", postmark(bounce))).status_code == 200
    before = dump(store.engine)
    assert f"mailbox of {ana.email}" in before

    store.delete(ana.email, source="test", secret=SECRET_KEY)

    after = dump(store.engine)
    assert ana.email not in after
    assert "ana@" not in after
    assert "bob@example.org" in after  # only Ana is erased
    summary = ledger.summary(store.engine, sent)
    assert summary is not None and summary.sent == 2  # the campaign's counts stay
    assert store.find(ana.email) is None
    with store.engine.connect() as connection:
        kept = connection.execute(select(d.c.email).where(d.c.send_id == send_id)).scalar_one()
    assert kept.startswith("erased:") and len(kept) == len("erased:") + 64


def test_a_pending_delivery_of_someone_erased_is_skipped(
    config: Config, store: Store, ana: Subscriber
) -> None:
    """Never mailed from what the ledger kept: the row is skipped, its counts right."""
    send = ledger.open_send(store.engine, build(config, SLUG), "newsletter", [])
    ledger.enqueue(
        store.engine, send, store.recipient_query("newsletter").where(subscribers.c.id == ana.id)
    )
    store.delete(ana.email, source="test", secret=SECRET_KEY)
    assert ledger.claim(store.engine, send.id, worker="w", limit=10) == []
    summary = ledger.summary(store.engine, SLUG)
    assert summary is not None and (summary.skipped, summary.total) == (1, 1)
    assert ana.email not in dump(store.engine)
