"""What happened after a send, kept per campaign for its report.

    send_runs        each run of a send (a resumed send runs again): when, through which service
    campaign_events  delivered, bounced (hard or soft), complained, unsubscribed, forwarded,
                     opened: one row each, with the delivery when one is known
    link_clicks      clicks per tracked link: a count, nobody's identity
    link_clickers    who clicked which link: written only under track_clicks = "per-subscriber"

The deliveries table keeps only the strongest event per delivery (a later bounce hides
the "delivered" before it); a report needs each of them, and events that belong to no
delivery (a forward, an open) or outlive one (the forward log is pruned hourly).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.schema import SchemaItem

from campaign.audience.tables import UTCDateTime, utcnow
from campaign.db import dialect_insert, metadata
from campaign.send.ledger import deliveries, sends, write

EVENT_KINDS = ("delivered", "bounced", "complained", "unsubscribed", "forwarded", "opened")


def _of_send(name: str, *columns: SchemaItem) -> Table:
    """A table whose rows each belong to one send (and go with it): an id, the send, `columns`."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("send", Integer, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        *columns,
    )


send_runs = _of_send(
    "send_runs",
    Column("provider", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Index("ix_send_runs_send", "send"),
)

campaign_events = _of_send(
    "campaign_events",
    Column("send_id", String(32)),
    Column("kind", String(32), nullable=False),
    Column("hard", Boolean),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_campaign_events_send_kind", "send", "kind"),
    Index("ix_campaign_events_send_id", "send_id"),
)

link_clicks = _of_send(
    "link_clicks",
    Column("link", Integer, nullable=False),
    Column("url", String(2000), nullable=False),
    Column("clicks", Integer, nullable=False),
    UniqueConstraint("send", "link", name="uq_link_clicks_send_link"),
)

link_clickers = _of_send(
    "link_clickers",
    Column("link", Integer, nullable=False),
    Column("subscriber", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_link_clickers_send_link", "send", "link"),
)
"""The subscriber's public id per click; never written under "aggregate"."""


def note_run(engine: Engine, send: int, provider: str) -> None:
    """A run of `send` began through `provider`."""
    with write(engine) as connection:
        connection.execute(
            insert(send_runs).values(send=send, provider=provider, started_at=utcnow())
        )


def note_event(
    engine: Engine,
    *,
    send_id: str | None,
    provider_id: str | None,
    kind: str,
    hard: bool = False,
) -> None:
    """A verified event (webhook, SMTP reply, bounce mail) about one delivery, found by our
    send id or the service's message id.

    Unsubscribes count once per delivery: a service reporting one after the person used
    the page finds it already counted."""
    if not (send_id or provider_id):
        return
    where = deliveries.c.send_id == send_id if send_id else deliveries.c.provider_id == provider_id
    with write(engine) as connection:
        row = connection.execute(
            select(deliveries.c.send_id, deliveries.c.send).where(where).limit(1)
        ).first()
        if row is None:
            return
        _insert(connection, row.send, row.send_id, kind, hard)


def _insert(connection: Connection, send: int, send_id: str | None, kind: str, hard: bool) -> None:
    if kind == "unsubscribed" and send_id is not None:
        seen = connection.execute(
            select(func.count()).where(
                campaign_events.c.send_id == send_id, campaign_events.c.kind == kind
            )
        ).scalar_one()
        if seen:
            return
    connection.execute(
        insert(campaign_events).values(
            send=send,
            send_id=send_id,
            kind=kind,
            hard=hard if kind == "bounced" else None,
            at=utcnow(),
        )
    )


def delivery_of(engine: Engine, campaign: str, subscriber: int) -> str | None:
    """The send id of `subscriber`'s message of `campaign`, if it was sent to them: what an
    unsubscribe by mail (the List-Unsubscribe mailto, whose token names the campaign) needs
    to count against the campaign."""
    with engine.connect() as connection:
        found = connection.execute(
            select(deliveries.c.send_id)
            .join(sends, sends.c.id == deliveries.c.send)
            .where(sends.c.campaign == campaign, deliveries.c.subscriber_id == subscriber)
        ).scalar()
    return str(found) if found is not None else None


def note_by_campaign(engine: Engine, campaign: str, kind: str, subscriber: int | None) -> None:
    """An unsubscribe or a forward made through a link of `campaign` (its token names it).
    Nothing is noted for a campaign never sent (a link made by a preview or a test)."""
    with write(engine) as connection:
        send = connection.execute(select(sends.c.id).where(sends.c.campaign == campaign)).scalar()
        if send is None:
            return
        send_id = None
        if subscriber is not None:
            send_id = connection.execute(
                select(deliveries.c.send_id).where(
                    deliveries.c.send == send, deliveries.c.subscriber_id == subscriber
                )
            ).scalar()
        _insert(connection, send, send_id, kind, False)


def count_click(engine: Engine, send: int, link: int, url: str, subscriber: str | None) -> None:
    """One click on link number `link` of `send`; `subscriber` only under "per-subscriber".
    One upsert, so two first clicks at once both count."""
    with write(engine) as connection:
        first = dialect_insert(connection, link_clicks).values(
            send=send, link=link, url=url[:2000], clicks=1
        )
        connection.execute(
            first.on_conflict_do_update(
                index_elements=["send", "link"], set_={"clicks": link_clicks.c.clicks + 1}
            )
        )
        if subscriber is not None:
            connection.execute(
                insert(link_clickers).values(
                    send=send, link=link, subscriber=subscriber[:64], at=utcnow()
                )
            )
