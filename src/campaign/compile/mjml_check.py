"""MJML checked before mjml sees it, since mjml 0.12 (pure Python) never validates:
unknown tags and attributes, elements in the wrong parent, an mj-class with children.

Also the two rewrites the build makes around mjml:
- `<mj-style inline="inline">` becomes a plain mj-style: our premailer step inlines
  every style anyway (mjml-python would need an extra it does not ship).
- Escaped characters are held as private-use sentinels through mjml, which decodes
  attribute values and writes them back unescaped (a quote in an alt text or a link
  would end the attribute), and restored as entities after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal

from mjml.core.registry import (  # type: ignore[import-untyped]
    components,
    register_core_components,
)

_COLUMN_CONTENT = {
    "mj-accordion", "mj-button", "mj-carousel", "mj-divider", "mj-image", "mj-navbar",
    "mj-raw", "mj-social", "mj-spacer", "mj-table", "mj-text",
}  # fmt: skip
PARENTS: dict[str, set[str]] = {
    "mjml": {"mj-head", "mj-body"},
    "mj-head": {
        "mj-attributes",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
    },  # fmt: skip
    "mj-body": {"mj-section", "mj-wrapper", "mj-hero", "mj-raw"},
    "mj-wrapper": {"mj-section", "mj-hero", "mj-raw"},
    "mj-section": {"mj-column", "mj-group", "mj-raw"},
    "mj-group": {"mj-column", "mj-raw"},
    "mj-column": _COLUMN_CONTENT,
    "mj-hero": _COLUMN_CONTENT,
    "mj-social": {"mj-social-element", "mj-raw"},
    "mj-navbar": {"mj-navbar-link", "mj-raw"},
    "mj-carousel": {"mj-carousel-image"},
    "mj-accordion": {"mj-accordion-element", "mj-raw"},
    "mj-accordion-element": {"mj-accordion-title", "mj-accordion-text"},
}
"""Which MJML elements each element may hold (MJML 4's documentation)."""
ENDING = {
    "mj-text", "mj-button", "mj-table", "mj-raw", "mj-style", "mj-title", "mj-preview",
    "mj-social-element", "mj-navbar-link", "mj-accordion-title", "mj-accordion-text",
}  # fmt: skip
"""Elements whose content is HTML, passed through as it is."""
GLOBAL_ATTRIBUTES = {"css-class", "mj-class"}
_SENTINELS = {"&#34;": "\ue000", "&#39;": "\ue001", "&lt;": "\ue002", "&gt;": "\ue003", "&amp;": "\ue004"}  # fmt: skip
_INLINE_STYLE = re.compile(r"(<mj-style\b[^>]*?)\s+inline=\"inline\"", re.IGNORECASE)


@dataclass(frozen=True)
class Element:
    """An MJML element as found in the source: its tag, attributes and line."""

    tag: str
    attrs: dict[str, str]
    line: int


@dataclass(frozen=True)
class Problem:
    level: Literal["error", "warning"]
    message: str
    element: Element


def _allowed() -> dict[str, set[str]]:
    register_core_components()
    return {
        tag: set(component.allowed_attrs()) | set(component.default_attrs()) | GLOBAL_ATTRIBUTES
        for tag, component in components.items()
    }


@dataclass
class _Checker(HTMLParser):
    allowed: dict[str, set[str]]
    problems: list[Problem] = field(default_factory=list)
    stack: list[Element] = field(default_factory=list)
    inside_ending: str | None = None

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open(tag, attrs, closes=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open(tag, attrs, closes=True)

    def handle_endtag(self, tag: str) -> None:
        if self.inside_ending is not None:
            if tag == self.inside_ending:
                self.inside_ending = None
                self.pop(tag)
            return
        self.pop(tag)

    def pop(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def open(self, tag: str, attrs: list[tuple[str, str | None]], *, closes: bool) -> None:
        if self.inside_ending is not None:
            return
        element = Element(tag, {k: v or "" for k, v in attrs}, self.getpos()[0])
        parent = self.stack[-1] if self.stack else None
        self.check(element, parent)
        if not closes:
            self.stack.append(element)
            if tag in ENDING:
                self.inside_ending = tag

    def check(self, element: Element, parent: Element | None) -> None:
        tag = element.tag
        if parent is not None and parent.tag in ("mj-attributes", "mj-class"):
            if parent.tag == "mj-class":
                self.problem("error", f"an mj-class holds no elements (<{tag}> in mj-class {parent.attrs.get('name', '')!r}): set the attributes on the mj-class itself", element)  # fmt: skip
            elif tag not in self.allowed and tag not in ("mj-all", "mj-class"):
                self.problem("error", f"mjml does not know the tag <{tag}>", element)
            return
        if tag == "mjml" and parent is None:
            return
        if not tag.startswith("mj-"):
            if parent is not None:
                self.problem("error", f"<{tag}> is HTML: put it inside an mj-text or mj-raw", element)  # fmt: skip
            return
        if tag not in self.allowed:
            self.problem("error", f"mjml does not know the tag <{tag}>", element)
            return
        allowed_children = PARENTS.get(parent.tag if parent else "", set())
        if parent is None or tag not in allowed_children:
            where = f"<{parent.tag}>" if parent else "the top level"
            self.problem("error", f"<{tag}> cannot be inside {where}", element)
        for name in element.attrs:
            if name not in self.allowed[tag]:
                self.problem("warning", f"<{tag}> has no attribute {name!r}: mjml ignores it", element)  # fmt: skip

    def problem(self, level: Literal["error", "warning"], message: str, element: Element) -> None:
        self.problems.append(Problem(level, message, element))


def check_mjml(source: str) -> list[Problem]:
    """Every problem mjml would crash on or silently ignore, with the element it is about."""
    checker = _Checker(_allowed())
    checker.feed(source)
    checker.close()
    return checker.problems


def before_mjml(source: str) -> str:
    """The MJML as mjml gets it: inline mj-style made plain, escapes held as sentinels."""
    source = _INLINE_STYLE.sub(r"\1", source)
    for entity, sentinel in _SENTINELS.items():
        source = source.replace(entity, sentinel)
    return source


def after_mjml(html: str) -> str:
    """The HTML mjml wrote, every held escape restored as an entity."""
    for entity, sentinel in _SENTINELS.items():
        html = html.replace(sentinel, entity)
    return html


def crashed_on(exc: BaseException) -> tuple[Element | None, int | None]:
    """The element mjml was handling when it crashed, from the innermost frame of its
    traceback that holds one: a parsed tag (which knows its source line), or the
    component being rendered (its tag and attributes, no line)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            line, name = getattr(value, "sourceline", None), getattr(value, "name", None)
            if isinstance(line, int) and isinstance(name, str) and name.startswith("mj"):
                attrs = {k: str(v) for k, v in getattr(value, "attrs", {}).items()}
                return Element(name, attrs, line), line
        this = frame.f_locals.get("self")
        tag = getattr(this, "component_name", None)
        if isinstance(tag, str):
            given = getattr(this, "attrs", {}) or {}
            return Element(tag, {k: str(v) for k, v in given.items() if v is not None}, 0), None
    return None, None
