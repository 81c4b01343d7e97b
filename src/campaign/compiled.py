"""The compiled campaign: what a build produces once, and every later stage reads.

It is stored as JSON when a send is scheduled or sent, so the archive page and a
scheduled send see exactly what was built then, whatever the source says now.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from campaign.errors import Location, UserError


class Asset(BaseModel):
    """An image copied into the build: `name` is its fingerprinted file name under assets/."""

    name: str
    url: str
    size: int
    source: str = ""
    """The image file as messages show it: relative to the workspace, or `built-in:...`."""
    path: str = ""
    """The image file the build read, absolute: copy it from there."""

    def read(self) -> bytes:
        """The bytes the build read; an image changed or gone since is an error (build again)."""
        source = Path(self.path)
        data = source.read_bytes() if source.is_file() else None
        if data is None or fingerprint(data) not in self.name:
            raise UserError(
                f"{self.source} changed or vanished since the build: build again",
                Location(self.source),
            )
        return data


def fingerprint(data: bytes) -> str:
    """The part of an image's name that changes with its bytes."""
    return hashlib.sha256(data).hexdigest()[:12]


class Compiled(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    subject: str
    preheader: str
    from_: str
    reply_to: str | None = None
    layout: str
    html: str
    text: str
    placeholders: frozenset[str]
    """Every placeholder in html and text, as "link:unsubscribe", "field:first_name"."""
    assets: tuple[Asset, ...] = ()
    warnings: tuple[str, ...] = ()
    source_hash: str
    """sha256 over every source file the build read: tells when a frozen build is stale."""
    send_at: datetime | None = None
    """`send_at:` from campaign.yaml, as an aware datetime, if set."""
    built_at: datetime
    workspace: str = ""
    """The workspace folder the build read, absolute."""
