"""Tables of the public web side: webhook events already seen, and the forward log.

Neither holds a friend's address: the forward log keeps keyed hashes of the
forwarder and of the client IP, only as long as the hourly rate limit needs them.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, UniqueConstraint

from campaign.audience.tables import UTCDateTime
from campaign.db import metadata

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(32), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("service", "event_id", name="uq_webhook_events_service_event"),
)
"""One row per (service, event id) processed: a replayed event finds its row and is skipped."""

forward_log = Table(
    "forward_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_hash", String(64), nullable=False, index=True),
    Column("ip_hash", String(64), nullable=False, index=True),
    Column("recipients", Integer, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False, index=True),
)
"""One row per forward: who (hashed), from where (hashed), to how many, when. Pruned after an hour."""
