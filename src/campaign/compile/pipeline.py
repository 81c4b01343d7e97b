"""The build itself: campaign -> views -> MJML -> HTML -> checks -> Compiled.

Imported only when a build runs (campaign.compile.build, on a cache miss): it brings
Jinja, markdown-it, mjml and premailer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from campaign import placeholders
from campaign.compile.checks import check_html
from campaign.compile.html import inline_css, mjml_to_html, plain_text
from campaign.compile.kinds import BLOCKS, KIND_NAME, PARTIALS, Kind, kinds, validate_section
from campaign.compile.markdown import MarkdownRenderer
from campaign.compile.mjml_check import after_mjml, before_mjml, check_mjml, crashed_on
from campaign.compile.session import Session
from campaign.compile.templates import Span, Templates, spans
from campaign.compile.views import BannerView, FooterView, Views
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.errors import BuildError, Diagnostic, Location
from campaign.load import (
    LAYOUT_TEMPLATE,
    SCAFFOLD,
    LoadedCampaign,
    layouts,
    load_campaign,
    load_layout_settings,
)
from campaign.preflight import Sources, sender_problems


def included(layout_dir: Path) -> list[Path]:
    """The files of a layout besides its templates, which a template may include (a
    stylesheet, say); scaffold/ (what `campaign new` copies) and dot-files aside."""
    found = []
    for path in sorted(layout_dir.rglob("*")):
        parts = path.relative_to(layout_dir).parts
        if parts[0] == SCAFFOLD or any(part.startswith((".", "__pycache__")) for part in parts):
            continue
        if path.suffix != ".j2" and path.is_file():
            found.append(path)
    return found


class Builder:
    """One build: campaign -> views -> MJML -> HTML -> checks -> Compiled."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.session = Session(config)
        self.markdown = MarkdownRenderer(self.session)

    def run(self, folder: Path) -> Compiled:
        session = self.session
        loaded, templates, source, parts = self.mjml(folder)
        html = self.to_html(source, templates, parts)
        session.stop_on_errors()
        session.diagnostics += check_html(
            html,
            address=self.config.organisation.address,
            public_base_url=self.config.public_base_url,
            slug=loaded.slug,
            where=Location(session.shown(templates.layout_dir / LAYOUT_TEMPLATE)),
        )
        session.stop_on_errors()

        campaign = loaded.campaign
        text = plain_text(html)
        send_at = campaign.send_at
        if send_at is not None and send_at.tzinfo is None:
            send_at = send_at.replace(tzinfo=self.config.tz)
        return Compiled(
            slug=loaded.slug,
            subject=campaign.subject,
            preheader=campaign.preheader or "",
            from_=campaign.from_ or self.config.defaults.from_,
            reply_to=campaign.reply_to or self.config.defaults.reply_to,
            layout=campaign.layout,
            html=html,
            text=text,
            placeholders=frozenset(placeholders.found(html) | placeholders.found(text)),
            assets=tuple(session.assets.values()),
            warnings=tuple(str(d) for d in session.diagnostics),
            source_hash=session.source_hash(),
            send_at=send_at,
            built_at=datetime.now(UTC),
            workspace=str(self.config.workspace),
            track_clicks=campaign.track_clicks or self.config.track_clicks,
            track_opens=self.config.track_opens
            if campaign.track_opens is None
            else campaign.track_opens,
        )

    def mjml(self, folder: Path) -> tuple[LoadedCampaign, Templates, str, list[Span]]:
        """Load and check the campaign, then render its layout: the MJML source, its
        templates, and which lines each section's partial wrote."""
        session, workspace = self.session, self.config.workspace
        loaded = self.markdown.merge.in_campaign(load_campaign(folder, workspace))
        session.record(loaded.source.path)
        campaign = loaded.campaign
        for check in sender_problems(
            Sources(self.config, loaded.source),
            from_=campaign.from_ or self.config.defaults.from_,
            reply_to=campaign.reply_to or self.config.defaults.reply_to,
            subject=campaign.subject,
            preheader=campaign.preheader,
        ):
            if check.level == "error":
                session.error(check.message, check.location)
        self.markdown.allow_html = campaign.html_in_markdown
        layout_dir = self.layout_folder(loaded)
        # a file added to any of these may change the build (a layout or partial that
        # overrides a built-in one, a schema beside a partial): the cache lists them
        session.list_folders(folder, layout_dir, BLOCKS, self.config.layouts_dir)
        templates = Templates(session, layout_dir)
        settings, settings_source = load_layout_settings(layout_dir, workspace)
        if settings_source:
            session.record(settings_source.path)
        available = kinds(layout_dir, workspace)
        for kind in available.values():
            session.record(kind.schema_file)

        views = Views(session, self.markdown, loaded)
        banner = views.banner(layout_dir, settings, settings_source)
        footer = views.footer(layout_dir, settings, settings_source)
        sections = []
        for index, section in enumerate(campaign.sections):
            found = self.kind(loaded, index, section.kind, layout_dir, available)
            if found is None:
                continue
            data = {"kind": section.kind, **section.fields}
            problems = validate_section(found, data, loaded.source, index)
            session.diagnostics += problems
            if not problems:
                sections.append((found, views.section(index, found, section.fields)))
            if found.name == "social" and not self.config.organisation.social:
                session.warning(
                    "the social block shows nothing: list the profiles in [organisation.social]"
                    " of campaign.toml",
                    loaded.source.location("sections", index, "kind"),
                )
        if not campaign.preheader:
            session.warning(
                "no preheader: inboxes will show the first words of the email instead",
                loaded.source.location("subject"),
            )
        session.stop_on_errors()

        for path in templates.files() + included(layout_dir):
            session.record(path)
        context = self.context(loaded, banner, footer, views)
        parts = [
            (kind.template, templates.render(kind.template, {**context, "section": view}))
            for kind, view in sections
        ]
        session.stop_on_errors()
        rendered = [Markup(text) for _, text in parts]
        source = templates.render(LAYOUT_TEMPLATE, {**context, "sections": rendered})
        session.stop_on_errors()
        self.markdown.merge.check(source, layout_dir)
        session.audience = self.markdown.merge.audience
        return loaded, templates, source, spans(source, parts)

    def layout_folder(self, loaded: LoadedCampaign) -> Path:
        name = loaded.campaign.layout
        available = layouts(self.config)
        folder = available.get(name, self.config.layouts_dir / name)
        if not KIND_NAME.fullmatch(name) or name not in available:
            known = list(available)
            raise BuildError(
                [
                    Diagnostic(
                        "error",
                        f"unknown layout {name!r}: there is no {self.session.shown(folder / LAYOUT_TEMPLATE)}"
                        f" (layouts: {', '.join(known) or 'none'})",
                        loaded.source.location("layout"),
                    )
                ]
            )
        return folder

    def kind(
        self,
        loaded: LoadedCampaign,
        index: int,
        name: str,
        layout_dir: Path,
        available: dict[str, Kind],
    ) -> Kind | None:
        if name in available:
            return available[name]
        partial = layout_dir / PARTIALS / f"{name}.mjml.j2"
        self.session.error(
            f"unknown section kind {name!r}: neither the block library nor the layout has"
            f" {self.session.shown(partial)} (kinds: {', '.join(available) or 'none'})",
            loaded.source.location("sections", index, "kind"),
        )
        return None

    def context(
        self, loaded: LoadedCampaign, banner: BannerView | None, footer: FooterView, views: Views
    ) -> dict[str, Any]:
        """What every template of the layout sees, besides `section` or `sections`."""
        campaign = loaded.campaign
        return {
            "link": lambda name: Markup(placeholders.link(name)),
            "field": lambda name, default="": Markup(placeholders.field(name, default)),
            "campaign": campaign,
            "organisation": self.config.organisation,
            "social": views.social(),
            "banner": banner,
            "footer": footer,
            "year": (campaign.date or campaign.send_at or date.today()).year,
        }

    def to_html(self, source: str, templates: Templates, parts: list[Span]) -> str:
        """MJML -> inlined HTML. MRML renders whatever parses, so the MJML is checked first;
        MJML it still cannot read is reported at the element's template line."""
        session = self.session
        for problem in check_mjml(source):
            where = templates.locate(problem.element, problem.element.line, parts)
            session.diagnostics.append(Diagnostic(problem.level, problem.message, where))
        session.stop_on_errors()
        try:
            html = after_mjml(mjml_to_html(before_mjml(source)))
        except Exception as exc:  # noqa: BLE001  (MjmlError, or any other failure of MRML: bad MJML)
            element, line = crashed_on(exc)
            where = (
                templates.locate(element, line, parts)
                if element
                else Location(session.shown(templates.layout_dir / LAYOUT_TEMPLATE))
            )
            about = f" on <{element.tag}>" if element else ""
            session.error(
                f"mjml failed{about} ({type(exc).__name__}: {exc or 'no message'}):"
                " check this element's attributes and content",
                where,
            )
            return ""
        try:
            return inline_css(html)
        except Exception as exc:  # noqa: BLE001  (premailer on HTML mjml wrote: a layout problem, not a crash)
            session.error(
                f"inlining CSS failed ({type(exc).__name__}: {exc})",
                Location(session.shown(templates.layout_dir / LAYOUT_TEMPLATE)),
            )
            return ""
