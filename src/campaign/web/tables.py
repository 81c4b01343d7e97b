"""Tables of the public web side: webhook events and tokens already seen, and the forward log.

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

webhook_tokens = Table(
    "webhook_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(32), nullable=False),
    Column("token", String(255), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("used_at", UTCDateTime, nullable=False, index=True),
    UniqueConstraint("service", "token", name="uq_webhook_tokens_service_token"),
)
"""Signature tokens already used (Mailgun), with the body they came with: the same token
on another body is a forgery. Pruned once the replay window has passed."""

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
