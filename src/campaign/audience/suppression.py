"""The suppression rules: who is blocked, which reason wins, and how a block is lifted.

A suppression is keyed by the address's hash, so an erased address stays blocked.
Reasons only ever get stronger (a complaint replaces an unsubscribe), except through
`lift()`: the one way back, used by `resubscribe` (the person's own request) and by an
import with `--resubscribe` (a reason the user gives). `erase()` is the strongest block:
the person's data goes, the hash stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from campaign.audience.models import email_hash
from campaign.audience.queries import insert_ignore, log_event
from campaign.audience.tables import (
    events,
    list_members,
    subscribers,
    suppressions,
    topic_choices,
    utcnow,
)

SOFT_BOUNCE_LIMIT = 3
"""Soft bounces after which an address is treated as hard-bounced and suppressed."""

STRENGTH = {"unsubscribed": 1, "bounced": 2, "complained": 3, "deleted": 4}
"""A stronger suppression reason replaces a weaker one; only `unsubscribed` can be undone."""


def suppress(
    connection: Connection,
    email: str | None,
    reason: str,
    source: str,
    *,
    hashed: str | None = None,
) -> bool:
    """Block an address (or raise its reason to a stronger one); whether anything changed."""
    hashed = hashed or email_hash(email or "")
    now = utcnow()
    current = connection.execute(
        select(suppressions.c.reason).where(suppressions.c.email_hash == hashed)
    ).scalar()
    if current is None:
        insert_ignore(
            connection,
            suppressions,
            [
                {
                    "email_hash": hashed,
                    "email": email,
                    "reason": reason,
                    "source": source,
                    "created_at": now,
                }
            ],
            ["email_hash"],
        )
        return True
    if STRENGTH[reason] > STRENGTH[current]:
        values: dict[str, Any] = {"reason": reason, "source": source, "created_at": now}
        if reason == "deleted":
            values["email"] = None
        connection.execute(
            update(suppressions).where(suppressions.c.email_hash == hashed).values(**values)
        )
        return True
    return False


def block(
    connection: Connection, subscriber_id: int | None, email: str, reason: str, source: str
) -> None:
    """Set a bounced / complained status (never weakening a stronger one) and suppress."""
    if subscriber_id is not None:
        weaker = [status for status, strength in STRENGTH.items() if strength < STRENGTH[reason]]
        connection.execute(
            update(subscribers)
            .where(
                subscribers.c.id == subscriber_id,
                or_(subscribers.c.status == "subscribed", subscribers.c.status.in_(weaker)),
            )
            .values(status=reason, updated_at=utcnow())
        )
    suppress(connection, email, reason, source)


def lift(connection: Connection, hashes: Sequence[str], *, source: str, now: datetime) -> None:
    """Unblock the addresses of `hashes`: no suppression, subscribed again with fresh consent
    from `source`, soft bounces forgotten. The caller logs why."""
    connection.execute(delete(suppressions).where(suppressions.c.email_hash.in_(hashes)))
    connection.execute(
        update(subscribers)
        .where(subscribers.c.email_hash.in_(hashes))
        .values(
            status="subscribed",
            consent_source=source,
            consent_at=now,
            soft_bounces=0,
            updated_at=now,
        )
    )


def erase(connection: Connection, hashed: str, source: str) -> bool:
    """Erase the personal data of the address whose hash is `hashed` and block it for good
    (a `deleted` suppression keeps only the hash); event details about it are blanked.
    Returns whether a subscriber was erased (else only the block is new)."""
    subscriber_id = connection.execute(
        select(subscribers.c.id).where(subscribers.c.email_hash == hashed)
    ).scalar()
    suppress(connection, None, "deleted", source, hashed=hashed)
    about = events.c.email_hash == hashed
    if subscriber_id is not None:
        about = or_(about, events.c.subscriber_id == subscriber_id)
    connection.execute(update(events).where(about).values(detail=""))
    if subscriber_id is not None:
        for table in (list_members, topic_choices):
            connection.execute(delete(table).where(table.c.subscriber_id == subscriber_id))
        connection.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(
                email=None,
                email_hash=None,
                name="",
                first_name="",
                last_name="",
                fields={},
                status="deleted",
                consent_source=None,
                consent_at=None,
                updated_at=utcnow(),
            )
        )
    log_event(connection, subscriber_id, hashed, "deleted", source)
    return subscriber_id is not None
