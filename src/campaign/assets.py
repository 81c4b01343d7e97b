"""A campaign's images, kept in the database with its frozen build.

Every image of a build has a fingerprinted name (`banner.bc340ff0d7f5.png`): the
name changes whenever the bytes do, so the name alone identifies the content and
the same image is stored once, however many campaigns use it. A send, a schedule
and a test send store the images before anything leaves; `campaign serve` answers
`/assets/<name>` from this table only, so any host sharing the database serves them.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, LargeBinary, String, Table, select

from campaign.audience.tables import UTCDateTime, utcnow
from campaign.compiled import Compiled
from campaign.db import insert_ignoring, metadata

assets = Table(
    "assets",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
)
"""One row per fingerprinted image name; rows are never changed, since the name fixes the bytes."""

_TYPES = {".svg": "image/svg+xml", ".webp": "image/webp", ".avif": "image/avif"}


@dataclass(frozen=True, slots=True)
class StoredAsset:
    name: str
    content_type: str
    data: bytes


def content_type(name: str) -> str:
    """The media type of an image from its name's suffix."""
    suffix = Path(name).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def stored_names(engine: Engine, names: Iterable[str]) -> set[str]:
    """Which of `names` the database holds."""
    wanted = sorted(set(names))
    if not wanted:
        return set()
    with engine.connect() as connection:
        return set(
            connection.execute(select(assets.c.name).where(assets.c.name.in_(wanted))).scalars()
        )


def store_assets(engine: Engine, compiled: Compiled) -> int:
    """Store the images of `compiled` not stored yet; how many were added."""
    missing = {a.name for a in compiled.assets} - stored_names(
        engine, (a.name for a in compiled.assets)
    )
    rows = [
        {
            "name": asset.name,
            "content_type": content_type(asset.name),
            "size": asset.size,
            "data": asset.read(),
            "stored_at": utcnow(),
        }
        for asset in compiled.assets
        if asset.name in missing
    ]
    if rows:
        with engine.begin() as connection:
            connection.execute(insert_ignoring(connection, assets, ["name"]), rows)
    return len(rows)


def load_asset(engine: Engine, name: str) -> StoredAsset | None:
    """The stored image called `name`, or None."""
    with engine.connect() as connection:
        row = connection.execute(
            select(assets.c.name, assets.c.content_type, assets.c.data).where(assets.c.name == name)
        ).first()
    return None if row is None else StoredAsset(row.name, row.content_type, bytes(row.data))
