"""The ledger's tables, and the write transaction every change to them goes through.

`campaign.send.ledger` explains the rows' life; this module only defines them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from campaign.audience.tables import UTCDateTime
from campaign.db import metadata

SEND_STATUSES = ("running", "paused", "finished", "failed")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "unknown", "skipped")

sends = Table(
    "sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(200), nullable=False),
    Column("list_name", String(200), nullable=False),
    Column("topics", JSON, nullable=False),
    Column("segment", Text, doc="the --where/--segment condition; none: the whole list"),
    Column("compiled", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("enqueued_through", Integer, nullable=False, default=0),
    Column("enqueued", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("campaign", name="uq_sends_campaign"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("send_id", String(32), primary_key=True),
    Column("send", Integer, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("recipient", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("provider_id", String(255)),
    Column("reason", Text, nullable=False, default=""),
    Column("retry_at", UTCDateTime),
    Column("claimed_by", String(200)),
    Column("claimed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("event", String(32)),
    Column("event_detail", Text),
    Column("event_at", UTCDateTime),
    Column("resolved_by", String(64)),
    UniqueConstraint("send", "subscriber_id", name="uq_deliveries_send_subscriber"),
    Index("ix_deliveries_send_status", "send", "status", "subscriber_id"),
    Index("ix_deliveries_provider_id", "provider_id"),
)

d = deliveries


def new_worker_id() -> str:
    """host:pid:nonce: unique, and it tells a person where a claim came from. Whether that
    worker is alive is judged by its lease (`campaign.send.lease`), never by the pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def new_send_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE), so
    claimers in other processes wait their turn instead of both reading the same rows."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
