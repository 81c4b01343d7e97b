"""One build's bookkeeping: the diagnostics found, the files read, the folders listed,
the images used: what the build cache (compile/cache.py) keys a build on."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from campaign.compile.inputs import AudienceCheck, Stamp, listing
from campaign.compiled import Asset, fingerprint
from campaign.config import Config
from campaign.errors import BuildError, Diagnostic, Location
from campaign.guards import image_problem
from campaign.load import shown_path

REMOTE = ("http://", "https://")


def inside(path: Path, folder: Path) -> bool:
    """Whether a campaign or layout may use `path`: a file in its own folder, not a dot-file.

    This keeps the workspace's .env (the signing key), its database and anything
    else outside the folder out of the email and out of assets/.
    """
    root = folder.resolve()
    return path.is_relative_to(root) and not any(
        part.startswith(".") for part in path.relative_to(root).parts
    )


class Session:
    """Collects every diagnostic of one build, so one run reports all the mistakes it can see."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.diagnostics: list[Diagnostic] = []
        self.sources: dict[str, str] = {}
        self.stamps: dict[Path, Stamp] = {}
        """Every file read, by absolute path."""
        self.listings: dict[Path, str] = {}
        """Folders whose list of files shaped the build (a file added there may change it),
        with the `listing` of each as the build saw it."""
        self.audience: AudienceCheck | None = None
        """What the build looked up in the subscribers' database, if anything."""
        self.started_ns = time.time_ns()
        self.assets: dict[str, Asset] = {}

    def error(self, message: str, location: Location | None) -> None:
        self.diagnostics.append(Diagnostic("error", message, location))

    def warning(self, message: str, location: Location | None) -> None:
        self.diagnostics.append(Diagnostic("warning", message, location))

    def stop_on_errors(self) -> None:
        if any(d.level == "error" for d in self.diagnostics):
            raise BuildError(self.diagnostics)

    def shown(self, path: Path) -> str:
        return shown_path(path, self.config.workspace)

    def record(self, path: Path, data: bytes | None = None) -> None:
        """Remember a file the build read, for the source hash and the build cache.

        The file is stat'ed after it was read: if it changed in between, its mtime is
        after `started_ns`, and the cache rehashes such a file whenever it checks it.
        """
        data = path.read_bytes() if data is None else data
        digest = hashlib.sha256(data).hexdigest()
        stat = path.stat()
        self.sources[self.shown(path)] = digest
        self.stamps[path.absolute()] = Stamp(
            stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, digest
        )

    def list_folders(self, *folders: Path) -> None:
        """Remember folders where a file added or removed may change the build."""
        for folder in folders:
            self.listings[folder.absolute()] = listing(folder)

    def read_text(self, path: Path) -> str:
        data = path.read_bytes()
        self.record(path, data)
        return data.decode("utf-8")

    def asset_url(
        self, ref: str, alt: str | None, base: Path, where: Location | None
    ) -> str | None:
        """The URL of image `ref`: remote URLs as they are, local files fingerprinted under assets/."""
        if not alt or not alt.strip():
            self.error(
                f"image {ref} has no alt text: describe it for people who cannot see it", where
            )
        if ref.startswith(REMOTE):
            return ref
        path = (base / ref).resolve()
        if not path.is_file():
            self.error(f"image file not found: {ref} (looked for {self.shown(path)})", where)
            return None
        if not inside(path, base):
            self.error(f"image {ref} is not a file of {self.shown(base)}", where)
            return None
        data = path.read_bytes()
        if problem := image_problem(data, ref):
            self.error(problem, where)
            return None
        self.record(path, data)
        name = f"{path.stem}.{fingerprint(data)}{path.suffix.lower()}"
        url = f"{self.config.assets_url}/{name}"
        self.assets[name] = Asset(
            name=name, url=url, size=len(data), source=self.shown(path), path=str(path)
        )
        return url

    def source_hash(self) -> str:
        digest = hashlib.sha256()
        settings = self.config.model_dump_json(
            include={"organisation", "public_base_url", "defaults", "timezone"}
        )
        digest.update(settings.encode())
        for name in sorted(self.sources):
            digest.update(f"\n{name}\0{self.sources[name]}".encode())
        return digest.hexdigest()
