"""Tables of signups: pending (unconfirmed) signups, consent records, rate-limit counters.

An unconfirmed signup lives only in `signups`, never in `subscribers`: a campaign's
recipients query cannot reach it. It is deleted when confirmed, or purged unconfirmed.
IP addresses are kept only as keyed hashes.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint

from campaign.audience.tables import UTCDateTime
from campaign.db import metadata

METHODS = ("form", "confirmation", "import", "cli")
"""How a consent was given: the form (single opt-in, or the signup of a double one), the
confirmation link, a CSV import, `campaign` commands."""

signups = Table(
    "signups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "token", String(32), nullable=False, unique=True, doc="random; the signed link carries it"
    ),
    Column("list_name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_hash", String(64), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("fields", JSON, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("consent_text", Text, nullable=False),
    Column("ip_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("mailed_at", UTCDateTime, doc="when the confirmation last went out"),
    UniqueConstraint("list_name", "email_hash", name="uq_signups_list_email"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), index=True),
    Column("list_name", String(200), nullable=False),
    Column("method", String(16), nullable=False),
    Column("consent_text", Text, nullable=False),
    Column("ip_hash", String(64), doc="keyed hash of the client IP; none for an import"),
    Column("created_at", UTCDateTime, nullable=False),
)
"""One row per consent given: when, how, the exact words shown, from where (hashed)."""

signup_limits = Table(
    "signup_limits",
    metadata,
    Column("key", String(80), primary_key=True, doc="ip:<hash> or address:<hash>"),
    Column("window_start", UTCDateTime, nullable=False, index=True),
    Column("count", Integer, nullable=False),
)
"""Signups per IP and per address in the current hour, counted in one atomic upsert."""
