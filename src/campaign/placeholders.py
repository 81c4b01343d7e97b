"""Placeholder tokens: how a compiled campaign marks what each recipient fills in.

A layout asks for `{{ link('unsubscribe') }}` or `{{ field('first_name', default='friend') }}`,
Markdown, the subject and the preheader for `{{ first_name | default("friend") }}`;
compile writes a token such as `{{{link:unsubscribe}}}` or
`{{{field:first_name:friend}}}` there. A field's fallback travels in its token,
percent-encoded down to letters and digits ("dear friend" is `dear%20friend`), so
tokens hold no spaces (premailer percent-encodes spaces inside href values), no
Markdown or HTML syntax, and survive markdown-it, mjml and premailer byte for byte:
personalisation is only string filling.
"""

from __future__ import annotations

import ast
import re
from typing import Literal
from urllib.parse import unquote

LINKS = ("view", "forward", "preferences", "unsubscribe")
"""The four links every message carries. `view` is the same for every recipient."""

Kind = Literal["link", "field"]

PATTERN = re.compile(r"\{\{\{(link|field):([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z0-9%]+))?\}\}\}")
"""Matches one token; group 1 is the kind, group 2 the name, group 3 the encoded fallback or None."""

ENCODED = re.compile(
    r"%7B%7B%7B(?P<token>(?:link|field):[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9%]+)?)%7D%7D%7D",
    re.IGNORECASE,
)
"""A token whose braces a URL encoder percent-encoded (markdown-it does, in link targets)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MERGE_TAG = re.compile(r"(?<!\{)\{\{\s*([^{}]*?)\s*\}\}(?!\})")
"""A merge tag as people write it: `{{ first_name | default(\"friend\") }}`; group 1 is its inside."""
_FILTER = re.compile(
    r"""\s*\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(((?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^()"'])*)\))?\s*"""
)
_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def encode(fallback: str) -> str:
    """A fallback as a token carries it: every character but ASCII letters and digits as %XX."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), fallback)


def token(kind: Kind, name: str, fallback: str = "") -> str:
    """The token for a link or a merge field, e.g. `{{{field:first_name:friend}}}`."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"placeholder names are letters, digits and underscores: {name!r}")
    if kind == "link" and name not in LINKS:
        raise ValueError(f"unknown link {name!r}; known links: {', '.join(LINKS)}")
    if kind == "link" and fallback:
        raise ValueError(f"the {name} link has no fallback")
    inner = f"{kind}:{name}:{encode(fallback)}" if fallback else f"{kind}:{name}"
    return "{{{" + inner + "}}}"


def link(name: str) -> str:
    return token("link", name)


def field(name: str, default: str = "") -> str:
    """A merge field's token; `default` is shown when the recipient's field is empty or missing."""
    return token("field", name, default)


def fallback(match: re.Match[str]) -> str:
    """The fallback of a PATTERN match, decoded ("" when it has none)."""
    encoded = match.group(3)
    return unquote(encoded) if encoded else ""


def found(text: str) -> set[str]:
    """The placeholders in `text`, as "kind:name" strings (fallbacks left out)."""
    return {f"{m.group(1)}:{m.group(2)}" for m in PATTERN.finditer(text)}


def fields(text: str) -> set[str]:
    """The names of the merge fields in `text`."""
    return {m.group(2) for m in PATTERN.finditer(text) if m.group(1) == "field"}


def restore(text: str) -> str:
    """`text` with percent-encoded tokens (`%7B%7B%7Bfield:x%7D%7D%7D`) made tokens again."""
    return ENCODED.sub(lambda m: "{{{" + m.group("token") + "}}}", text)


def shown(text: str) -> str:
    """`text` with its tokens written as merge tags again, for people to read."""

    def tag(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "link":
            return "{{ " + name + "_url }}"
        default = fallback(match)
        return "{{ " + name + (f" | default({_quoted(default)})" if default else "") + " }}"

    return PATTERN.sub(tag, text)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def markdown_merge_tags(text: str, warnings: list[str] | None = None) -> str:
    """Turn the merge syntax of Markdown, subjects and preheaders into placeholder tokens.

    `{{ first_name }}` is a merge field, `{{ first_name | default("friend") }}` one with a
    fallback; `{{ unsubscribe_url }}` (and view_url, forward_url, preferences_url) is a
    link. Raises ValueError on anything else that looks like a tag; an unknown filter is
    ignored with a warning appended to `warnings`, so the build can say where.
    """

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0)
        name, filters = _parse(match.group(1), tag)
        default = ""
        for filter_name, argument in filters:
            if filter_name != "default":
                if warnings is not None:
                    warnings.append(
                        f"unknown filter '{filter_name}' in '{tag}' is ignored:"
                        ' merge fields take only | default("text")'
                    )
                continue
            default = _default_text(argument, tag)
        if name.endswith("_url") and name[: -len("_url")] in LINKS:
            if default and warnings is not None:
                warnings.append(f"a link has no fallback: default() in '{tag}' is ignored")
            return link(name[: -len("_url")])
        return field(name, default)

    return MERGE_TAG.sub(replace, text)


def _parse(inner: str, tag: str) -> tuple[str, list[tuple[str, str | None]]]:
    """A tag's field name and its filters with their raw arguments."""
    name = _NAME.match(inner)
    if name is None:
        raise ValueError(_not_a_tag(tag))
    filters: list[tuple[str, str | None]] = []
    at = name.end()
    while at < len(inner):
        step = _FILTER.match(inner, at)
        if step is None or step.end() == at:
            raise ValueError(_not_a_tag(tag))
        filters.append((step.group(1), step.group(2)))
        at = step.end()
    return name.group(), filters


def _default_text(argument: str | None, tag: str) -> str:
    """The text of `default("...")`: one string in quotes, nothing else."""
    try:
        value = ast.literal_eval(argument.strip()) if argument else None
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, str):
        raise ValueError(f"in '{tag}', default takes one text in quotes: default(\"friend\")")
    return value


def _not_a_tag(tag: str) -> str:
    return (
        f"'{tag}' is not a merge tag: write {{{{ first_name }}}},"
        ' {{ first_name | default("friend") }} or {{ unsubscribe_url }}'
    )
