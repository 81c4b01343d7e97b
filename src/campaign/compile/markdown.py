"""Markdown -> HTML for campaigns: merge tags as placeholder tokens, local images fingerprinted."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape
from mdit_py_plugins.footnote import footnote_plugin

from campaign import placeholders
from campaign.compile.kinds import LINK_SCHEMES
from campaign.compile.session import Session, inside
from campaign.errors import Location
from campaign.merge import MergeFields


def parser() -> MarkdownIt:
    """CommonMark with what people write in newsletters: tables, ~~strikethrough~~, footnotes[^1]."""
    return (
        MarkdownIt("commonmark", {"html": True})
        .enable(["table", "strikethrough"])
        .use(footnote_plugin)
    )


class MarkdownRenderer:
    """Renders the campaign's Markdown, reporting each problem at its own line.

    Raw HTML is the escape hatch, off unless the campaign sets `html_in_markdown: true`:
    otherwise it is shown as text, with a warning at its line.
    """

    def __init__(self, session: Session, allow_html: bool = False) -> None:
        self.session = session
        self.allow_html = allow_html
        self.markdown = parser()
        self.merge = MergeFields(session.config, session.diagnostics)

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
        text = self.merge_tags(text, where)
        tokens = self.markdown.parse(text)
        self.check(tokens, base, where)
        return self.finish(self.markdown.renderer.render(tokens, self.markdown.options, {}))

    def inline(self, text: str, where: Location | None) -> Markup:
        """One line of inline Markdown (emphasis, links, code), for table cells and list entries."""
        tokens = self.markdown.parseInline(self.merge_tags(text, where))
        self.check(tokens, None, where)
        return self.finish(self.markdown.renderer.render(tokens, self.markdown.options, {}))

    def merge_tags(self, text: str, where: Location | None) -> str:
        """The text with its merge tags as tokens; a bad tag is an error at its own line.
        The one place Markdown's merge syntax is read."""
        first = where.line if where and where.line else 1
        lines = text.splitlines()
        for offset, line in enumerate(lines):
            at = Location(where.file, first + offset) if where else None
            lines[offset] = self.merge.convert(line, at)
        return "\n".join(lines)

    def check(self, tokens: list[Token], base: Path | None, where: Location | None) -> None:
        """Fingerprint local images, refuse links that are not web, mail or phone links,
        and show raw HTML as text unless the campaign allows it."""
        first = where.line if where and where.line else 1
        warned: set[int] = set()
        for block in tokens:
            line = first + (block.map[0] if block.map else 0)
            here = Location(where.file, line) if where else None
            for token in (block, *(block.children or ())):
                if token.type.startswith("html_") and not self.allow_html:
                    if line not in warned:
                        warned.add(line)
                        self.session.warning(
                            "raw HTML in Markdown is shown as text: set html_in_markdown: true"
                            " in campaign.yaml to let it through",
                            here,
                        )
                    token.content = str(escape(token.content))
                elif token.type == "link_open":
                    href = str(token.attrGet("href") or "")
                    if not href.lower().startswith((*LINK_SCHEMES, "#", "%7b%7b%7b", "{{{")):
                        self.session.error(
                            f"link {href!r} is not a web, mail or phone link:"
                            " use an https:, http:, mailto: or tel: URL",
                            here,
                        )
                elif token.type == "image" and base is None:
                    self.session.error(
                        "an image in a table cell or list entry: use the block's image field",
                        here,
                    )
                elif token.type == "image" and base is not None:
                    src = str(token.attrGet("src") or "")
                    url = self.session.asset_url(src, token.content, base, here)
                    token.attrSet("src", url or src)

    @staticmethod
    def finish(rendered: str) -> Markup:
        # markdown-it percent-encodes braces in link targets; tokens must stay byte for byte.
        return Markup(placeholders.restore(rendered))
