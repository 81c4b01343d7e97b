"""The web copy of a sent campaign: the frozen compiled output, made impersonal.

The archive page, the Atom feed and the forward to a friend all show this copy,
so it must carry nobody's personal links and nobody's merge fields. The view
link becomes the archive URL; an anchor around a personal link (forward,
preferences, unsubscribe) is unwrapped to its text; a merge field shows its
fallback (`{{ first_name | default("friend") }}`), else a neutral value ("friend"
for a name, empty otherwise). In the text part, a line that
holds a personal link is dropped.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass

from campaign.compiled import Compiled
from campaign.placeholders import PATTERN, fallback

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


def impersonal(text: str, view_url: str = "", *, html: bool = False) -> str:
    """`text` filled for nobody in particular: each field's fallback (HTML-escaped in HTML),
    the view link as `view_url`, the personal links empty."""

    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "link":
            return view_url if name == "view" else ""
        value = fallback(match) or NEUTRAL_FIELDS.get(name, "")
        return html_lib.escape(value) if html else value

    return PATTERN.sub(replace, text)


def web_copy(compiled: Compiled, view_url: str) -> WebCopy:
    """The impersonal copy of `compiled`, its view links pointing at `view_url`."""
    html = _PERSONAL_ANCHOR.sub(lambda m: f"<span>{m.group(2)}</span>", compiled.html)
    return WebCopy(
        slug=compiled.slug,
        subject=impersonal(compiled.subject, view_url),
        preheader=impersonal(compiled.preheader, view_url),
        html=impersonal(html, view_url, html=True),
        text=impersonal(_PERSONAL_LINE.sub("", compiled.text), view_url),
        from_=compiled.from_,
        reply_to=compiled.reply_to,
    )
