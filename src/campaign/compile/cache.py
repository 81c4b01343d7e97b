"""The build cache: a build whose inputs are all as they were reuses the last one.

The inputs of a build, each checked before its last result is reused:

- every file it read (campaign.yaml, Markdown, images, the layout's templates and
  settings, the block library's partials and schemas): by size, mtime and ctime, and
  by sha256 when any differs or when the file changed within two seconds of the
  build (file times are coarse: such a file could change again unseen);
- the list of files in the folders where a new file could change the result (the
  campaign folder, its layout folder, the workspace's layouts/, the block library);
- the workspace settings (all of campaign.toml, as loaded), the workspace's path, and
  the year (a campaign without `date` or `send_at` shows this year's copyright);
- the code: the Python version, every installed distribution with its version (the
  names of the *.dist-info folders on sys.path, so a switch from `mjml` to
  `mjml-python` counts too), and campaign's own files by size and mtime (an editable
  install keeps one version number while its code changes);
- the audience: a campaign with merge fields beyond the core ones warns of those no
  subscriber has, so these are looked up again, and must give the same answer.

One entry per campaign folder, in the workspace's .campaign/cache/builds/, as JSON,
written to a temporary file and renamed, so a reader never sees half of one. Any
entry that cannot be read or checked is a miss; deleting the folder is always safe.
A build with errors is never stored. Checking an entry imports none of the compiler.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json

import campaign
from campaign.compile.inputs import AudienceCheck, listing
from campaign.compiled import Compiled
from campaign.config import Config

if TYPE_CHECKING:
    from campaign.compile.session import Session

FORMAT = 2
"""Bumped when an entry's layout changes, so old entries are misses."""
FOLDER = Path(".campaign") / "cache" / "builds"
RACY_NS = 2_000_000_000
"""A file changed this close to the build is rehashed on every check."""
_DISTRIBUTIONS = (".dist-info", ".egg-info", ".egg-link", ".pth")


@dataclass(frozen=True)
class Entry:
    """One cached build and what it was built from. A plain dataclass read with
    pydantic_core's JSON parser: a pydantic model of it would cost more to define than
    the whole check."""

    code: str
    settings: str
    started_ns: int
    """When the build began (time.time_ns()): files changed after it are rehashed."""
    files: list[tuple[str, int, int, int, str]]
    """(absolute path, size, mtime_ns, ctime_ns, sha256) of every file read."""
    listings: dict[str, str]
    audience: AudienceCheck | None
    compiled: dict[str, Any]
    """The Compiled as JSON data, validated only once the inputs are found unchanged."""

    def to_json(self) -> bytes:
        return to_json({"format": FORMAT, **asdict(self)})

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        """The entry in `raw`; ValueError if it is not one of this format."""
        data = from_json(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a build cache entry of this format")
        audience = data["audience"]
        return cls(
            code=str(data["code"]),
            settings=str(data["settings"]),
            started_ns=int(data["started_ns"]),
            files=[
                (str(p), int(size), int(mtime), int(ctime), str(sha))
                for p, size, mtime, ctime, sha in data["files"]
            ],
            listings={str(k): str(v) for k, v in data["listings"].items()},
            audience=None
            if audience is None
            else AudienceCheck(
                tuple(audience["fields"]), tuple(audience["unknown"]), audience["problem"]
            ),
            compiled=dict(data["compiled"]),
        )


def entry_path(config: Config, folder: Path) -> Path:
    """Where the cached build of campaign `folder` lives."""
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return config.workspace / FOLDER / f"{folder.name}.{key}.json"


def load(config: Config, folder: Path) -> Compiled | None:
    """The last build of `folder` if every input is as it was then, else None."""
    try:
        entry = Entry.from_json(entry_path(config, folder).read_bytes())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # missing, damaged, or of another format
    if (
        entry.settings != settings(config)
        or entry.code != code()
        or any(listing(Path(f)) != digest for f, digest in entry.listings.items())
        or not all(_unchanged(*file, racy_after=entry.started_ns - RACY_NS) for file in entry.files)
        or not _same_audience(config, entry.audience)
    ):
        return None
    try:
        return Compiled.model_validate(entry.compiled)
    except ValidationError:
        return None


def save(config: Config, folder: Path, compiled: Compiled, session: Session) -> None:
    """Store a successful build; a workspace that cannot be written to just has no cache."""
    entry = Entry(
        code=code(),
        settings=settings(config),
        started_ns=session.started_ns,
        files=[
            (str(p), s.size, s.mtime_ns, s.ctime_ns, s.sha256)
            for p, s in sorted(session.stamps.items())
        ],
        listings={str(f): digest for f, digest in sorted(session.listings.items())},
        audience=session.audience,
        compiled=compiled.model_dump(mode="json"),
    )
    path = entry_path(config, folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(entry.to_json())
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)


def settings(config: Config) -> str:
    """A digest of what a build takes from outside its files: the workspace settings and
    path, and the year (the copyright year of a campaign without a date)."""
    parts = (config.model_dump_json(), str(config.workspace), str(date.today().year))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@functools.cache
def code() -> str:
    """A digest of the code a build runs: Python, every distribution installed (name and
    version), and campaign's own files. Once per process: the code it runs is loaded once."""
    digest = hashlib.sha256(sys.version.encode())
    for entry in sys.path:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith(_DISTRIBUTIONS))
        except OSError:
            continue
        if names:  # a folder without any (the script's, the current one) is no code
            digest.update("\0".join([entry, *names]).encode())
    package = Path(campaign.__file__).parent
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{root}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _unchanged(
    path: str, size: int, mtime_ns: int, ctime_ns: int, sha256: str, *, racy_after: int
) -> bool:
    try:
        stat = os.stat(path)
    except OSError:
        return False
    if stat.st_size != size:
        return False
    if (stat.st_mtime_ns, stat.st_ctime_ns) == (mtime_ns, ctime_ns) and max(
        mtime_ns, ctime_ns
    ) < racy_after:
        return True
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest() == sha256
    except OSError:
        return False


def _same_audience(config: Config, audience: AudienceCheck | None) -> bool:
    """Whether the database still says what it did of the campaign's own merge fields."""
    if audience is None:
        return True
    from campaign.audience.fields import unknown_fields  # the database layer: only if needed

    unknown, problem = unknown_fields(config, audience.fields)
    return (tuple(unknown), problem) == (audience.unknown, audience.problem)
