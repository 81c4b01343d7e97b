"""A layout's Jinja templates: rendering them, and finding the template line behind a problem."""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateSyntaxError

from campaign.compile.session import Session
from campaign.errors import Location
from campaign.load import LAYOUT_TEMPLATE


@functools.lru_cache(maxsize=16)
def environment(layout_dir: Path) -> Environment:
    """One Jinja environment per layout folder, so templates compile once per process.

    Jinja checks each template's modification time, so edits are seen at once.
    """
    return Environment(
        loader=FileSystemLoader(str(layout_dir)),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Templates:
    """The templates of one layout folder, rendered for one build."""

    def __init__(self, session: Session, layout_dir: Path) -> None:
        self.session = session
        self.layout_dir = layout_dir

    def files(self) -> list[Path]:
        return sorted(self.layout_dir.rglob("*.j2"))

    def render(self, name: str, context: dict[str, Any]) -> str:
        """Render one template; any failure is an error at the template's file and line."""
        try:
            return environment(self.layout_dir).get_template(name).render(context)
        except Exception as exc:  # noqa: BLE001  (a layout can fail in any way; the user sees where)
            self.session.error(f"{type(exc).__name__} in layout: {exc}", self.location(exc, name))
            return ""

    def location(self, exc: Exception, name: str) -> Location:
        shown = self.session.shown
        if isinstance(exc, TemplateSyntaxError) and exc.filename:
            return Location(shown(Path(exc.filename)), exc.lineno)
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if Path(frame.filename).resolve().is_relative_to(self.layout_dir.resolve()):
                return Location(shown(Path(frame.filename)), frame.lineno)
        return Location(shown(self.layout_dir / name))

    def tag_location(self, tag: str) -> Location:
        """The first template line that opens `<tag`, else the layout template."""
        for path in self.files():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if f"<{tag}" in line:
                    return Location(self.session.shown(path), number)
        return Location(self.session.shown(self.layout_dir / LAYOUT_TEMPLATE))
