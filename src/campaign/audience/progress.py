"""Import checkpoints: an import commits in chunks, and a rerun of the same file continues.

The key is a hash of the file's bytes and the import's options, so only the very
same import resumes. A checkpoint keeps counts and CSV line numbers, never an
address; it is deleted when its import completes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Connection, Integer, String, Table, delete, select, update

from campaign.audience.tables import UTCDateTime, utcnow
from campaign.db import metadata

import_progress = Table(
    "import_progress",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("rows_done", Integer, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


@dataclass
class Progress:
    """What the committed chunks of one import did."""

    key: str
    rows_done: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    resubscribed: int = 0
    skipped_lines: list[int] = field(default_factory=list)
    """Lines skipped because the person unsubscribed, bounced or complained."""

    def counts(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "resubscribed": self.resubscribed,
            "skipped_lines": self.skipped_lines,
        }


def import_key(data: bytes, options: Sequence[Any]) -> str:
    """Which import this is: the file's bytes and every option that changes what it writes."""
    return hashlib.sha256(hashlib.sha256(data).digest() + json.dumps(options).encode()).hexdigest()


def load(connection: Connection, key: str) -> Progress:
    """The checkpoint of import `key`, or a fresh one."""
    row = connection.execute(
        select(import_progress.c.rows_done, import_progress.c.counts).where(
            import_progress.c.key == key
        )
    ).first()
    if row is None:
        return Progress(key)
    counts = row.counts if isinstance(row.counts, dict) else json.loads(row.counts)
    return Progress(key, row.rows_done, **counts)


def save(connection: Connection, progress: Progress) -> None:
    """Record `progress` in the transaction that wrote its chunk (so both commit, or neither)."""
    values = {"rows_done": progress.rows_done, "counts": progress.counts(), "updated_at": utcnow()}
    changed = connection.execute(
        update(import_progress).where(import_progress.c.key == progress.key).values(**values)
    ).rowcount
    if not changed:
        connection.execute(import_progress.insert().values(key=progress.key, **values))


def clear(connection: Connection, key: str) -> None:
    connection.execute(delete(import_progress).where(import_progress.c.key == key))
