"""Which segment a send goes to: `--where CONDITION` or `--segment NAME` (saved in campaign.toml).

    [segments]
    pueblo = "city = 'Pueblo'"

A send records the condition's text in the ledger (and its schedule), not the name: a
saved segment edited later must not change who a resumed or scheduled send goes to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from campaign.audience import segments
from campaign.audience.segments import Node, SegmentError
from campaign.errors import ConfigError, Location, UserError


@dataclass(frozen=True)
class Segment:
    """A parsed condition, with the saved name it came from (if any)."""

    condition: str
    node: Node
    name: str | None = None

    def __str__(self) -> str:
        return f"segment {self.name} ({self.condition})" if self.name else f"where {self.condition}"


def check_saved(saved: dict[str, str], path: Path) -> None:
    """Parse every saved segment now, so a typo is an error at its campaign.toml line."""
    for name, condition in saved.items():
        try:
            segments.parse(condition)
        except SegmentError as exc:
            raise ConfigError(
                f"[segments] {name}: {exc.message}", Location(path, _line_of(path, name))
            ) from None


def _line_of(path: Path, name: str) -> int | None:
    """The line of `name = ...` inside [segments] (tomllib keeps no positions)."""
    if not path.is_file():
        return None
    section = ""
    key = re.compile(rf"""\s*(?:{re.escape(name)}|"{re.escape(name)}"|'{re.escape(name)}')\s*=""")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if header := re.match(r"\s*\[([^\]]*)\]", line):
            section = header.group(1).strip()
        elif section == "segments" and key.match(line):
            return number
    return None


def choose(saved: dict[str, str], where: str | None, name: str | None) -> Segment | None:
    """The segment `--where` or `--segment` names; None for the whole list (or topics)."""
    if where and name:
        raise UserError("give --where or --segment, not both")
    if name:
        if name not in saved:
            known = ", ".join(sorted(saved)) or "none (add them under [segments] in campaign.toml)"
            raise UserError(f"no saved segment {name!r} (saved segments: {known})")
        return Segment(saved[name], segments.parse(saved[name]), name)
    if where is not None:
        try:
            return Segment(where, segments.parse(where))
        except SegmentError as exc:
            raise UserError(f"--where: {exc.message}") from None
    return None


def parsed(condition: str | None) -> Node | None:
    """The node of a condition recorded in the ledger or a schedule (None: no segment)."""
    return segments.parse(condition) if condition else None
