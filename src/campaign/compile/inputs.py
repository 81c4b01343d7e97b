"""What a build read, as the build cache (cache.py) checks it: files, folder listings, the
audience. Standard library only, so checking a cached build stays cheap."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stamp:
    """A file as the build read it: the cache rehashes it only when its size, mtime or
    ctime differ. The ctime (inode change time) moves on every write and no tool can set
    it back, so a copy that keeps the size and mtime (`cp -p`, `rsync -t`) is still seen."""

    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str


@dataclass(frozen=True)
class AudienceCheck:
    """The merge fields beyond the core ones that a build looked up in the subscribers'
    database, and what it found: the cache reuses a build only while it finds the same."""

    fields: tuple[str, ...]
    unknown: tuple[str, ...]
    problem: str | None


def listing(folder: Path) -> str:
    """A digest of the names of every file under `folder` (none if it is missing); dot-files
    and caches aside, since a build never reads them."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        where = os.path.relpath(root, folder)
        for name in sorted(files):
            if not name.startswith("."):
                digest.update(f"{where}/{name}\n".encode())
    return digest.hexdigest()
