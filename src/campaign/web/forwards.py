"""Forward to a friend: hourly limits that hold under concurrency, and a note without links.

The limits are checked and the forward recorded in one transaction that holds a lock
for its whole length (PostgreSQL: a transaction-level advisory lock; SQLite: the write
lock, taken first with BEGIN IMMEDIATE), so concurrent bursts from one link or one
address are counted one after another and never pass the limit together.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from campaign.send.ledger import write
from campaign.web.tables import forward_log

LOCK_ID = 4_207_306_301
"""The PostgreSQL advisory lock the forward log is written under (any constant will do)."""

_DOT = r"[.\u3002\uff0e\uff61]"
"""A dot, or one of the dots browsers read as one in an internationalised domain."""
_LINKISH = re.compile(
    "|".join(
        (
            r"[a-z][a-z0-9+.-]*:/+\S*",  # scheme://anything
            r"(?:mailto|tel|sms|callto|xmpp|data|javascript):\S*",
            r"\S+@\S+",  # addresses
            r"\[[0-9a-f:.]+\](?::\d+)?\S*",  # [IPv6]
            r"\b\d{1,3}(?:\.\d{1,3}){3}\b(?::\d+)?\S*",  # IPv4
            # bare domains, ASCII or not (www.x.org, exämple.de, пример.рф, xn--...), and their paths
            rf"(?:[^\W_](?:[\w-]*[^\W_])?{_DOT})+(?:xn--[a-z0-9-]+|[^\W\d_]{{2,}})\b(?::\d+)?\S*",
        )
    ),
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def strip_links(text: str) -> str:
    """Plain text with anything a mail client could make a link removed: URLs, addresses,
    bare and internationalised domains, IP addresses; invisible characters that could hide
    one go first. A forward cannot carry a stranger's link."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n"))
    return re.sub(r"[ \t]{2,}", " ", _LINKISH.sub("", text)).strip()


def claim_forward(
    engine: Engine,
    subscriber_hash: str,
    ip_hash: str,
    count: int,
    *,
    per_subscriber: int,
    per_ip: int,
) -> bool:
    """Record a forward of `count` messages unless it would pass either hourly limit.
    Rows older than an hour go on the way: nothing is kept longer than the limit needs."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    with write(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(LOCK_ID)))
        connection.execute(delete(forward_log).where(forward_log.c.sent_at < since))

        def used(column: Any, value: str) -> int:
            query = select(func.coalesce(func.sum(forward_log.c.recipients), 0)).where(
                column == value, forward_log.c.sent_at >= since
            )
            return int(connection.execute(query).scalar_one())

        if used(forward_log.c.subscriber_hash, subscriber_hash) + count > per_subscriber:
            return False
        if used(forward_log.c.ip_hash, ip_hash) + count > per_ip:
            return False
        connection.execute(
            insert(forward_log).values(
                subscriber_hash=subscriber_hash, ip_hash=ip_hash, recipients=count, sent_at=now
            )
        )
    return True
