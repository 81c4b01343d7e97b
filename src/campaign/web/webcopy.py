"""The web copy of a sent campaign: the frozen compiled output, made impersonal.

The archive page, the Atom feed and the forward to a friend all show this copy,
so it must carry nobody's personal links and nobody's merge fields. The view
link becomes the archive URL; an anchor around a personal link (forward,
preferences, unsubscribe) is unwrapped to its text; merge fields get neutral
values ("friend" for a name, empty otherwise). In the text part, a line that
holds a personal link is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from campaign.compiled import Compiled
from campaign.placeholders import PATTERN

NEUTRAL_FIELDS: dict[str, str] = {"first_name": "friend", "name": "friend"}
"""Merge fields that read naturally with a neutral value ("Dear friend,"); the rest become empty."""

_PERSONAL_ANCHOR = re.compile(
    r"<a\b[^>]*?\bhref\s*=\s*([\"'])\s*\{\{\{link:(?:forward|preferences|unsubscribe)\}\}\}\s*\1[^>]*>(.*?)</a\s*>",
    re.IGNORECASE | re.DOTALL,
)
_PERSONAL_LINE = re.compile(
    r"^.*\{\{\{link:(?:forward|preferences|unsubscribe)\}\}\}.*(?:\r?\n|$)", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class WebCopy:
    slug: str
    subject: str
    preheader: str
    html: str
    text: str
    from_: str
    reply_to: str | None


def _fill(text: str, view_url: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "link":
            return view_url if name == "view" else ""
        return NEUTRAL_FIELDS.get(name, "")

    return PATTERN.sub(replace, text)


def web_copy(compiled: Compiled, view_url: str) -> WebCopy:
    """The impersonal copy of `compiled`, its view links pointing at `view_url`."""
    html = _PERSONAL_ANCHOR.sub(lambda m: f"<span>{m.group(2)}</span>", compiled.html)
    return WebCopy(
        slug=compiled.slug,
        subject=_fill(compiled.subject, view_url),
        preheader=_fill(compiled.preheader, view_url),
        html=_fill(html, view_url),
        text=_fill(_PERSONAL_LINE.sub("", compiled.text), view_url),
        from_=compiled.from_,
        reply_to=compiled.reply_to,
    )
