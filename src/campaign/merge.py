"""Merge fields at build time: tags to tokens where people write them, and the audience check.

Markdown, the subject and the preheader hold merge tags (`{{ first_name | default("friend") }}`),
layouts call `field("first_name", default="friend")`; both become placeholder tokens
(campaign.placeholders). A build remembers where each field is first used, so a tag
that cannot be read, an unknown filter, or a field no subscriber has is reported at
its own file and line. A tag left in a plain-text field (a title, an alt text), which
would be sent as typed, is a warning at its line too.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

from campaign import placeholders
from campaign.compile.inputs import AudienceCheck
from campaign.config import Config
from campaign.errors import Diagnostic, Location
from campaign.load import LAYOUT_TEMPLATE, LoadedCampaign, YamlFile, shown_path


class MergeFields:
    """The merge fields of one build; its diagnostics go to the build's list."""

    def __init__(self, config: Config, diagnostics: list[Diagnostic]) -> None:
        self.config = config
        self.diagnostics = diagnostics
        self.uses: dict[str, Location | None] = {}
        """Each merge field the campaign's texts use, and where first."""
        self.source: YamlFile | None = None
        self.audience: AudienceCheck | None = None

    def convert(self, text: str, where: Location | None) -> str:
        """`text` with its merge tags as tokens; any problem reported at `where`."""
        warnings: list[str] = []
        try:
            converted = placeholders.markdown_merge_tags(text, warnings)
        except ValueError as exc:
            self.diagnostics.append(Diagnostic("error", str(exc), where))
            return text
        self.diagnostics.extend(Diagnostic("warning", w, where) for w in warnings)
        for name in placeholders.fields(converted):
            self.uses.setdefault(name, where)
        return converted

    def in_campaign(self, loaded: LoadedCampaign) -> LoadedCampaign:
        """The campaign with its subject's and preheader's merge tags as tokens, so the layout
        (mj-title, mj-preview), the headers and the archive all fill them like the body."""
        campaign, source = loaded.campaign, loaded.source
        self.source = source
        update = {"subject": self.convert(campaign.subject, source.location("subject"))}
        if campaign.preheader:
            update["preheader"] = self.convert(campaign.preheader, source.location("preheader"))
        return replace(loaded, campaign=campaign.model_copy(update=update))

    def check(self, mjml: str, layout_dir: Path) -> None:
        """The checks that need the rendered layout: tags left as typed, then the audience."""
        self.check_literal_tags(mjml)
        self.check_audience(mjml, layout_dir)

    def check_literal_tags(self, mjml: str) -> None:
        """Warn of each merge tag still in the MJML: it came from a plain-text field, where
        tags are not filled, so every recipient would see it as typed."""
        for tag in dict.fromkeys(
            html.unescape(m.group(0)) for m in placeholders.MERGE_TAG.finditer(mjml)
        ):
            self.diagnostics.append(
                Diagnostic(
                    "warning",
                    f"'{tag}' is sent as typed: merge tags are filled in Markdown fields,"
                    " the subject and the preheader (in a layout: field('name'))",
                    self._yaml_line(tag),
                )
            )

    def _yaml_line(self, text: str) -> Location | None:
        if self.source is None:
            return None
        lines = self.source.path.read_text(encoding="utf-8").splitlines()
        number = next((n for n, line in enumerate(lines, 1) if text in line), None)
        return Location(self.source.shown, number)

    def check_audience(self, mjml: str, layout_dir: Path) -> None:
        """Warn of each merge field no subscriber has, at its first use; a field the layout
        asks for, at the first template line that names it."""
        uses = dict(self.uses)
        for name in sorted(placeholders.fields(mjml) - uses.keys()):
            uses[name] = self._layout_line(layout_dir, name)
        if not uses:
            return
        # Here, not at the top: the CLI loads the build without the database layer.
        from campaign.audience.fields import unknown_fields
        from campaign.audience.models import CORE_FIELDS

        unknown, problem = unknown_fields(self.config, uses)
        custom = tuple(sorted(set(uses) - set(CORE_FIELDS)))
        if custom:
            self.audience = AudienceCheck(custom, tuple(unknown), problem)
        if problem:
            self.diagnostics.append(Diagnostic("warning", problem, None))
        self.diagnostics.extend(
            Diagnostic(
                "warning",
                f"no subscriber has the merge field '{name}', so everyone gets its fallback"
                " (or nothing): check the spelling, or import a CSV with that column",
                uses[name],
            )
            for name in unknown
        )

    def _layout_line(self, layout_dir: Path, name: str) -> Location:
        call = re.compile(rf"""\bfield\(\s*["']{re.escape(name)}["']""")
        for path in sorted(layout_dir.rglob("*.mjml.j2")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if call.search(line):
                    return Location(shown_path(path, self.config.workspace), number)
        return Location(shown_path(layout_dir / LAYOUT_TEMPLATE, self.config.workspace))
