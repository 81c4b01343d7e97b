r"""MJML checked before mjml-python (MRML) sees it: MRML renders whatever parses and drops
unknown tags and attributes without a word, and names no line when the MJML does not parse.
So unknown tags and attributes, elements in the wrong parent, an mj-class with children,
elements left open or closed twice, HTML elements left open inside an mj-text (MRML
reads that HTML too, and knows no optional end tags) are found here first, each at its
line; a failure left over is located by the byte offset MRML reports.

Also the rewrites the build makes around MRML:
- Unquoted attribute values get quotes (`<div class=x>`, which MRML cannot read).
- `<mj-style inline="inline">` becomes a plain mj-style: our premailer step inlines
  every style anyway (mjml-python's MRML is built without its CSS inliner).
- Characters MRML would garble are given to it as numeric references, which it passes
  through untouched: it writes attribute values the way Rust debug-prints a string (a
  no-break space becomes the text `\u{a0}`, a backslash two, a combining accent
  `\u{301}`), and it cannot read the control characters XML forbids, anywhere. (The C1
  controls are dropped instead: HTML reads &#128; to &#159; as Windows-1252.)
- A bare 0 in a shorthand of lengths gets its unit (`padding="0 24px"` becomes
  `0px 24px`): MRML reads the shorthand as no padding at all, so an image 48 px too wide.
- Widths of images (their width attribute and their cell's) are cut to whole pixels,
  as MJML takes them: a 35% column of 576 px, less 24 px of padding, gives an image
  `width="177"` in MJML and `width="177.6"` in MRML.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal

from campaign.compile.mjml_spec import ATTRIBUTES, ENDING, PARENTS

_INLINE_STYLE = re.compile(r"(<mj-style\b[^>]*?)\s+inline=\"inline\"", re.IGNORECASE)
_TAG = re.compile(r"""<([a-zA-Z][^\s/>]*)((?:"[^"]*"|'[^']*'|[^'">])*)>""")
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
_TEXT_ATTRIBUTES = {
    "alt", "title", "href", "src", "srcset", "usemap", "name", "rel", "target", "base-url",
    "background-url", "thumbnails-src", "left-icon", "right-icon", "icon-wrapped-alt",
    "icon-unwrapped-alt", "icon-wrapped-url", "icon-unwrapped-url",
}  # fmt: skip
"""The attributes of MJML elements that MRML writes out as text or URLs, so that it garbles;
the others are lengths, colours and keywords (or CSS, where a reference would not do)."""
_GARBLED_TOO = set("\\\u115f\u1160\u3164\uff9e\uff9f\uffa0")
"""Besides the control, format, private-use, unassigned, mark and separator characters
(found by passing every code point through mjml-python 1.4.2)."""
_UNREADABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""The characters XML forbids: MRML fails on them wherever they are."""
_LENGTH = r"-?(?:\d+\.?\d*|\.\d+)(?:px|%)?"
_LENGTHS = re.compile(rf"\s*{_LENGTH}(?:\s+{_LENGTH}){{1,3}}\s*")
"""A shorthand of 2 to 4 lengths (`padding="0 24px"`), where MRML misreads a bare 0."""
_BARE_ZERO = re.compile(r"(?<![\w.-])0(?![\w.%])")
_FRACTION = re.compile(r'(\s(?:width|height)="|\sstyle="width:)(\d+)\.\d+(?=(?:px)?;?")')
"""A width or height attribute with a fraction, or the cell MRML puts around an image."""
_POSITION = re.compile(r"\s*at position (\d+):\d+")
_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip


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


@dataclass
class _Checker(HTMLParser):
    problems: list[Problem] = field(default_factory=list)
    stack: list[Element] = field(default_factory=list)
    inside_ending: str | None = None
    html: list[str] = field(default_factory=list)
    """The HTML elements open inside the ending element being read."""

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open(tag, attrs, closes=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open(tag, attrs, closes=True)

    def handle_endtag(self, tag: str) -> None:
        if self.inside_ending is not None:
            self.end_html(tag, self.stack[-1])
        elif _is_mjml(tag):
            self.end_mjml(tag)

    def end_html(self, tag: str, ending: Element) -> None:
        """An end tag inside an ending element: its own, or its HTML's."""
        if tag == ending.tag:
            self.inside_ending = None
            self.stack.pop()
            while self.html:
                self.unclosed_html(self.html.pop(), ending)
        elif tag in self.html:
            while (inner := self.html.pop()) != tag:
                self.unclosed_html(inner, ending)
        else:
            self.problem("error", f"</{tag}> inside <{ending.tag}> closes no open <{tag}>: mjml reads this HTML too", ending)  # fmt: skip

    def end_mjml(self, tag: str) -> None:
        if all(open_.tag != tag for open_ in self.stack):
            self.problem("error", f"</{tag}> closes no open <{tag}>", Element(tag, {}, self.getpos()[0]))  # fmt: skip
            return
        while (innermost := self.stack.pop()).tag != tag:
            self.unclosed(innermost)

    def handle_data(self, data: str) -> None:
        if self.inside_ending is None and self.stack and data.strip():
            parent = self.stack[-1]
            self.problem("error", f"text inside <{parent.tag}> ({data.strip()[:30]!r}): put it inside an mj-text", parent)  # fmt: skip

    def close(self) -> None:
        super().close()
        while self.stack:
            self.unclosed(self.stack.pop())

    def unclosed(self, element: Element) -> None:
        self.problem("error", f"<{element.tag}> is not closed: add </{element.tag}>, or end the tag with />", element)  # fmt: skip

    def unclosed_html(self, tag: str, ending: Element) -> None:
        self.problem("error", f"<{tag}> inside <{ending.tag}> is not closed: mjml reads this HTML too and needs </{tag}>", ending)  # fmt: skip

    def open(self, tag: str, attrs: list[tuple[str, str | None]], *, closes: bool) -> None:
        if self.inside_ending is not None:
            if not closes and tag not in _VOID:
                self.html.append(tag)
            return
        element = Element(tag, {k: v or "" for k, v in attrs}, self.getpos()[0])
        parent = self.stack[-1] if self.stack else None
        self.check(element, parent)
        if not closes and _is_mjml(tag):
            self.stack.append(element)
            if tag in ENDING:
                self.inside_ending = tag

    def check(self, element: Element, parent: Element | None) -> None:
        tag = element.tag
        if parent is not None and parent.tag in ("mj-attributes", "mj-class"):
            if parent.tag == "mj-class":
                self.problem("error", f"an mj-class holds no elements (<{tag}> in mj-class {parent.attrs.get('name', '')!r}): set the attributes on the mj-class itself", element)  # fmt: skip
            elif tag not in ATTRIBUTES and tag not in ("mj-all", "mj-class"):
                self.problem("error", f"mjml does not know the tag <{tag}>", element)
            return
        if tag == "mjml" and parent is None:
            return
        if not tag.startswith("mj-"):
            if parent is not None:
                self.problem("error", f"<{tag}> is HTML: put it inside an mj-text or mj-raw", element)  # fmt: skip
            return
        if tag not in ATTRIBUTES:
            self.problem("error", f"mjml does not know the tag <{tag}>", element)
            return
        allowed_children = PARENTS.get(parent.tag if parent else "", set())
        if parent is None or tag not in allowed_children:
            where = f"<{parent.tag}>" if parent else "the top level"
            self.problem("error", f"<{tag}> cannot be inside {where}", element)
        for name in element.attrs:
            if name not in ATTRIBUTES[tag]:
                self.problem("warning", f"<{tag}> has no attribute {name!r}: mjml ignores it", element)  # fmt: skip

    def problem(self, level: Literal["error", "warning"], message: str, element: Element) -> None:
        self.problems.append(Problem(level, message, element))


def _is_mjml(tag: str) -> bool:
    return tag == "mjml" or tag.startswith("mj-")


def check_mjml(source: str) -> list[Problem]:
    """Every problem MRML would fail on or silently ignore, with the element it is about."""
    checker = _Checker()
    checker.feed(source)
    checker.close()
    return checker.problems


def before_mjml(source: str) -> str:
    """The MJML as MRML gets it: inline mj-style made plain, and the characters it would
    garble in attribute values, or cannot read anywhere, as numeric references."""
    source = _INLINE_STYLE.sub(r"\1", source)
    source = _TAG.sub(_prepare_tag, source)
    return _UNREADABLE.sub(lambda found: _reference(found.group(0)), source)


def _prepare_tag(tag: re.Match[str]) -> str:
    """One tag with its attribute values quoted, and made safe for MRML: references for
    what it would garble (in every value of HTML, in text and URLs of MJML), a unit for
    a bare 0 in a shorthand of lengths."""
    html = not _is_mjml(tag.group(1).lower())

    def value(attribute: re.Match[str]) -> str:
        name, equals, quoted = attribute.groups()
        if quoted[0] not in "\"'":
            quoted = f'"{quoted}"'
        if html or name.lower() in _TEXT_ATTRIBUTES:
            quoted = "".join(_reference(c) if _garbled(c) else c for c in quoted)
        elif _LENGTHS.fullmatch(quoted[1:-1]):
            quoted = _BARE_ZERO.sub("0px", quoted)
        return name + equals + quoted

    return f"<{tag.group(1)}{_ATTRIBUTE.sub(value, tag.group(2))}>"


def _garbled(char: str) -> bool:
    r"""Whether MRML writes `char` in an attribute value as a Rust escape (`\u{a0}`, `\\`)."""
    return char in _GARBLED_TOO or (char != " " and unicodedata.category(char)[0] in "CMZ")


def _reference(char: str) -> str:
    """`char` as a numeric reference; a C1 control as nothing, since HTML reads &#128; to
    &#159; as Windows-1252 (&#150; is a dash), and the control shows as nothing anyway."""
    return "" if "\x80" <= char <= "\x9f" else f"&#{ord(char)};"


def after_mjml(html: str) -> str:
    """The HTML MRML wrote, with widths and heights in whole pixels as MJML writes them."""
    return _FRACTION.sub(r"\1\2", html)


class MjmlError(ValueError):
    """MRML could not read the MJML; `element` is where it stopped, when it said."""

    def __init__(self, message: str, element: Element | None) -> None:
        super().__init__(message)
        self.element = element


def mjml_error(exc: ValueError, source: str) -> MjmlError:
    """MRML's error about `source`, the byte offset it names turned into a line and the
    MJML element there: the one whose tag starts at it, else the last one opened before."""
    message = str(exc)
    position = _POSITION.search(message)
    if position is None:
        return MjmlError(message, None)
    data = source.encode()
    offset = int(position.group(1))
    tags = re.findall(rb"<(mj(?:ml|-[\w-]+))", data[:offset]) or [b"mjml"]
    here = re.match(rb"</?(mj(?:ml|-[\w-]+))", data[offset:])
    tag = (here.group(1) if here else tags[-1]).decode()
    return MjmlError(_POSITION.sub("", message), Element(tag, {}, data.count(b"\n", 0, offset) + 1))


def crashed_on(exc: BaseException) -> tuple[Element | None, int | None]:
    """The element MRML stopped at and its line in the MJML, when it said where."""
    element = exc.element if isinstance(exc, MjmlError) else None
    return element, element.line if element else None
