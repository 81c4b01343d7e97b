"""A layout's Jinja templates: rendering them, and finding the template line behind a problem."""

from __future__ import annotations

import functools
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateSyntaxError,
)

from campaign.compile.kinds import BLOCKS, PARTIALS
from campaign.compile.mjml_check import Element
from campaign.compile.session import Session
from campaign.errors import Location
from campaign.load import LAYOUT_TEMPLATE


def environment(layout_dir: Path) -> Environment:
    """The Jinja environment of a layout folder: `partials/<name>` is the layout's own file,
    else the block library's.

    Jinja checks each template's modification time, so edits are seen at once; a partial
    added or removed in the layout changes which file a name means, so it gets a new one.
    """
    own = frozenset(p.name for p in (layout_dir / PARTIALS).glob("*.j2"))
    return _environment(layout_dir, own)


@functools.lru_cache(maxsize=16)
def _environment(layout_dir: Path, own_partials: frozenset[str]) -> Environment:
    """One environment per layout folder and set of own partials, so templates compile once."""
    return Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(str(layout_dir)),
                PrefixLoader({PARTIALS: FileSystemLoader(str(BLOCKS))}),
            ]
        ),
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
        """The layout's templates, then the block library's it does not replace."""
        own = sorted(p.resolve() for p in self.layout_dir.rglob("*.j2"))
        replaced = {p.name for p in own if p.parent.name == PARTIALS}
        return own + sorted(p for p in BLOCKS.glob("*.j2") if p.name not in replaced)

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
            if Path(frame.filename).resolve() in self.files():
                return Location(shown(Path(frame.filename)), frame.lineno)
        return Location(shown(self.layout_dir / name))

    def path(self, name: str) -> Path:
        """The file template `name` comes from: the layout's own, else the block library's."""
        filename = environment(self.layout_dir).get_template(name).filename
        return Path(filename or self.layout_dir / name).resolve()

    def locate(self, element: Element, line: int | None, spans: list[Span]) -> Location:
        """The template line that wrote `element` (found at `line` of the MJML, if known).

        Rendered MJML has no map back to its templates, so this looks in the template
        that wrote that part (a section's partial, else the layout) for the line opening
        the same tag with the most of the same attributes.
        """
        candidates, near = [self.path(LAYOUT_TEMPLATE)], line or 0
        for span in spans:
            if line is not None and span.first <= line <= span.last:
                candidates, near = [self.path(span.template)], line - span.first + 1
        candidates += [p for p in self.files() if p.name.startswith("_") and p not in candidates]
        if line is None:
            candidates += [p for p in self.files() if p not in candidates]
        opening = re.compile(rf"<{re.escape(element.tag)}(?=[\s/>]|$)")
        best: tuple[int, int, Path, int] | None = None
        for rank, path in enumerate(candidates):
            for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if opening.search(text):
                    score = sum(
                        (f"{name}=" in text) + 2 * (f'{name}="{value}"' in text)
                        for name, value in element.attrs.items()
                    )
                    # the most alike; among equals, the one nearest the MJML line
                    distance = abs(number - near) if rank == 0 else 10**6
                    if best is None or (score, -distance) > (best[0], -best[1]):
                        best = (score, distance, path, number)
        if best is None:
            return Location(self.session.shown(candidates[0]))
        return Location(self.session.shown(best[2]), best[3])


@dataclass(frozen=True)
class Span:
    """The lines of the layout's MJML that one section's partial wrote."""

    template: str
    first: int
    last: int


def spans(source: str, parts: list[tuple[str, str]]) -> list[Span]:
    """Where each (template, rendered text) part landed in `source`, in order."""
    found, cursor = [], 0
    for template, text in parts:
        start = source.find(text, cursor) if text.strip() else -1
        if start < 0:
            continue
        first = source.count("\n", 0, start) + 1
        found.append(Span(template, first, first + text.count("\n")))
        cursor = start + len(text)
    return found
