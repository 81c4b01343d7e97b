"""What is learnt of a delivery after it went (webhooks), and taking a person out of the ledger."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import Connection, Engine, case, func, or_, select, update

from campaign.audience.tables import utcnow
from campaign.send.tables import d, write

RESOLVABLE = ("unknown", "pending")
"""Statuses an event about the delivery settles as sent: a pending row here is one queued again
(`--resend-unknown`) or for a retry, and the event says the service has it already."""

_EVENT_RANK = {
    "delivered": 1,
    "opened": 2,
    "clicked": 3,
    "unsubscribed": 4,
    "bounced": 5,
    "complained": 6,
}


def record_event(
    engine: Engine,
    *,
    send_id: str | None = None,
    provider_id: str | None = None,
    event: str,
    detail: str = "",
) -> bool:
    """Note what a webhook reported about one delivery (delivered, bounced, complained, opened...),
    found by our send id or the provider's message id. A weaker event never hides a stronger one
    (a late "delivered" after "bounced"). An event of a delivery that is `unknown` (or queued
    again to resend it) proves the service took it: the row becomes `sent`, `resolved_by` the
    event. Returns whether a delivery matched."""
    if send_id is None and provider_id is None:
        raise ValueError("record_event needs send_id or provider_id")
    where = d.c.send_id == send_id if send_id is not None else d.c.provider_id == provider_id
    with write(engine) as connection:
        row = connection.execute(
            select(d.c.send_id, d.c.event, d.c.status).where(where).limit(1)
        ).first()
        if row is None:
            return False
        if row.status in RESOLVABLE and event in _EVENT_RANK:
            connection.execute(
                update(d)
                .where(d.c.send_id == row.send_id, d.c.status.in_(RESOLVABLE))
                .values(
                    status="sent", reason="", resolved_by=f"{event} webhook", updated_at=utcnow()
                )
            )
        if _EVENT_RANK.get(row.event or "", 0) <= _EVENT_RANK.get(event, 0):
            connection.execute(
                update(d)
                .where(d.c.send_id == row.send_id)
                .values(event=event, event_detail=detail[:1000], event_at=utcnow())
            )
    return True


def erase(connection: Connection, subscriber_id: int | None, address: str, secret: str) -> None:
    """Take one person out of the ledger (`subscribers delete`): each of their deliveries keeps
    its status (the campaign's counts stay right) and, in place of the address, a hash of it
    keyed with the workspace's `secret` (no one without the key can test an address against
    it); name, merge fields and any service message naming them go. Pending ones are skipped."""
    key = hashlib.sha256(b"campaign.ledger.erase:" + secret.encode()).digest()
    keyed = "erased:" + hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
    theirs = d.c.email == address
    if subscriber_id is not None:
        theirs = or_(theirs, d.c.subscriber_id == subscriber_id)
    connection.execute(
        update(d)
        .where(theirs, d.c.status == "pending")
        .values(status="skipped", reason="erased", updated_at=utcnow())
    )
    naming = func.lower(d.c.reason).contains(address, autoescape=True)
    connection.execute(
        update(d)
        .where(theirs)
        .values(
            email=keyed,
            recipient={},
            event_detail=None,
            reason=case((naming, "erased"), else_=d.c.reason),
        )
    )
