"""The audience tables, declared on `campaign.db.metadata` (created by migration 0001_audience).

Addresses are stored trimmed and lowercased, so "unique" is case-insensitive on
every backend. Each address also has its SHA-256 (`email_hash`): suppressions are
keyed by it, so an erased subscriber's address stays blocked without being kept.
Subscriber rows are never removed (erasure blanks them), so other areas' foreign
keys to `subscribers.id` always stay valid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

from campaign.db import metadata

STATUSES = ("subscribed", "unsubscribed", "bounced", "complained", "deleted")
"""A subscriber's status. Only `subscribed` is ever mailed; `deleted` rows hold no personal data."""

MEMBER_STATUSES = ("active", "unsubscribed")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "deleted")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores timestamptz. SQLite stores the text SQLAlchemy itself would
    ("2024-05-01 09:30:00.000000", UTC, sortable); we format it here, cached, because
    a 100,000-row import binds the same `now` 600,000 times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(
            String(26) if dialect.name == "sqlite" else DateTime(timezone=True)
        )

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware one (datetime.now(UTC))")
        return _sqlite_text(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@lru_cache(maxsize=64)
def _sqlite_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def utcnow() -> datetime:
    return datetime.now(UTC)


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("email", String(320), unique=True),
    Column("email_hash", String(64), unique=True),
    Column("name", Text, nullable=False, default=""),
    Column("first_name", Text, nullable=False, default=""),
    Column("last_name", Text, nullable=False, default=""),
    Column("fields", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default="subscribed"),
    Column("consent_source", Text),
    Column("consent_at", UTCDateTime),
    Column("soft_bounces", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(f"status IN {STATUSES!r}", name="ck_subscribers_status"),
)

lists = Table(
    "lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

list_members = Table(
    "list_members",
    metadata,
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("status", String(16), nullable=False, default="active"),
    Column("added_at", UTCDateTime, nullable=False),
    CheckConstraint(f"status IN {MEMBER_STATUSES!r}", name="ck_list_members_status"),
)

topics = Table(
    "topics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

topic_choices = Table(
    "topic_choices",
    metadata,
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "topic_id",
        Integer,
        ForeignKey("topics.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("chosen_at", UTCDateTime, nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email_hash", String(64), nullable=False, unique=True),
    Column("email", String(320)),
    Column("reason", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(f"reason IN {SUPPRESSION_REASONS!r}", name="ck_suppressions_reason"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL"), index=True),
    Column("email_hash", String(64), index=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""What happened to whom, when and from where: subscribed, unsubscribed, bounced, resubscribed..."""
