"""Markdown -> HTML for campaigns: merge tags as placeholder tokens, local images fingerprinted."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

from campaign import placeholders
from campaign.compile.session import Session, inside
from campaign.errors import Location

_MERGE_TAG = re.compile(r"(?<!\{)\{\{\s*([^{}]*?)\s*\}\}(?!\})")
_ENCODED_TOKEN = re.compile(
    r"%7B%7B%7B(link|field):([A-Za-z_][A-Za-z0-9_]*)%7D%7D%7D", re.IGNORECASE
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def markdown_merge_tags(text: str) -> str:
    """Turn the Markdown merge syntax into placeholder tokens.

    `{{ first_name }}` is a merge field; `{{ unsubscribe_url }}` (and view_url,
    forward_url, preferences_url) is a link. Raises ValueError on any other tag.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"'{match.group(0)}' is not a merge tag: write {{{{ first_name }}}} or {{{{ unsubscribe_url }}}}"
            )
        if name.endswith("_url") and name[: -len("_url")] in placeholders.LINKS:
            return placeholders.link(name[: -len("_url")])
        return placeholders.field(name)

    return _MERGE_TAG.sub(replace, text)


class MarkdownRenderer:
    """Renders the campaign's Markdown, reporting each problem at its own line."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.markdown = MarkdownIt("commonmark")

    def file(self, folder: Path, name: str, where: Location) -> Markup:
        """A Markdown file of the campaign `folder`, rendered."""
        session = self.session
        path = (folder / name).resolve()
        if not path.is_file():
            session.error(f"Markdown file not found: {name}", where)
            return Markup("")
        if not inside(path, folder):
            session.error(f"Markdown file {name} is not a file of {session.shown(folder)}", where)
            return Markup("")
        try:
            text = session.read_text(path)
        except UnicodeDecodeError:
            session.error("not valid UTF-8", Location(session.shown(path)))
            return Markup("")
        return self.render(text, folder, Location(session.shown(path), 1))

    def render(self, text: str, base: Path, where: Location | None) -> Markup:
        """Markdown -> HTML with merge tags as tokens and local images fingerprinted.

        `where` is the file and first line of the text, so problems name their own line.
        """
        first = where.line if where and where.line else 1
        lines = text.splitlines()
        for offset, text_line in enumerate(lines):
            try:
                lines[offset] = markdown_merge_tags(text_line)
            except ValueError as exc:
                self.session.error(
                    str(exc), Location(where.file, first + offset) if where else None
                )
        tokens = self.markdown.parse("\n".join(lines))
        for token in tokens:
            for child in token.children or ():
                if child.type == "image":
                    line = first + (token.map[0] if token.map else 0)
                    where_image = Location(where.file, line) if where else None
                    src = str(child.attrGet("src") or "")
                    url = self.session.asset_url(src, child.content, base, where_image)
                    child.attrSet("src", url or src)
        rendered = self.markdown.renderer.render(tokens, self.markdown.options, {})
        # markdown-it percent-encodes braces in link targets; tokens must stay byte for byte.
        return Markup(
            _ENCODED_TOKEN.sub(
                lambda m: placeholders.token(m.group(1).lower(), m.group(2)),  # type: ignore[arg-type]
                rendered,
            )
        )
