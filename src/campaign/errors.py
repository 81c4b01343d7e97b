"""Errors of `campaign`.

Every error a user can cause is a `UserError`: the CLI prints it (with where it
happened: a file, a line, a CSV row) and exits 1, never with a traceback.

    CampaignError
     ├── UserError                 bad input; names where, the CLI shows it plainly
     │    ├── ConfigError          campaign.toml, environment, .env
     │    ├── BuildError           a campaign that does not compile (holds Diagnostics)
     │    └── ImportFileError      a CSV file refused as a whole
     └── ProviderError            a mail service refused the send as a whole
                                   (bad credentials, bad request): stop, do not retry
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file and, when known, a line (or CSV row)."""

    file: Path | str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)


@dataclass(frozen=True)
class Diagnostic:
    """One build warning or error, as shown to the user."""

    level: Literal["error", "warning"]
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.level}: {self.message}"


class CampaignError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(CampaignError):
    """A mistake in the user's input. The message is complete and shown as is."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ConfigError(UserError):
    """campaign.toml, the environment or .env is wrong or incomplete."""


class BuildError(UserError):
    """A campaign failed to build; `diagnostics` holds every error and warning found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.level == "error"]
        first = errors[0] if errors else (diagnostics[0] if diagnostics else None)
        super().__init__(str(first) if first else "build failed")


class ImportFileError(UserError):
    """A subscriber file refused as a whole; nothing from it was written."""


class ProviderError(CampaignError):
    """A mail service refused the send as a whole (credentials, account, request shape).

    The send stops; retrying cannot help. The message is the service's own words
    and never holds a secret.
    """
