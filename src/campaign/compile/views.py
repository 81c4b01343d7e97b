"""Loading views: the campaign, its layout's settings and the organisation as the templates see them.

Markdown is rendered to HTML and images resolved to their final URLs here, so the
templates only place values. Each section's fields are read by the schema of its
kind (compile/kinds.py), so a layout's own fields get the same treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from markupsafe import Markup

from campaign.compile.kinds import FieldDecl, Kind, alt_name, check_url, declared
from campaign.compile.markdown import MarkdownRenderer
from campaign.compile.session import Session
from campaign.errors import Location
from campaign.load import LayoutSettings, LoadedCampaign, YamlFile


@dataclass(frozen=True)
class ImageView:
    """An image as a template sees it: its final URL and its alt text."""

    url: str
    alt: str


@dataclass(frozen=True)
class ButtonView:
    label: str
    url: str
    colour: str | None


@dataclass(frozen=True)
class LinkView:
    label: str
    url: str


@dataclass(frozen=True)
class BannerView:
    image: ImageView | None
    link: str | None


@dataclass(frozen=True)
class FooterView:
    """The footer's own parts; the organisation's name and address come from campaign.toml."""

    image: ImageView | None
    disclaimer: Markup
    copyright_holder: str


Keys = tuple[str | int, ...]
"""Where a value is in campaign.yaml: its keys and indexes from the top."""


class Views:
    """Builds the views of one campaign, reporting problems through the session."""

    def __init__(
        self, session: Session, markdown: MarkdownRenderer, loaded: LoadedCampaign
    ) -> None:
        self.session = session
        self.markdown = markdown
        self.loaded = loaded

    def image(
        self,
        ref: str | None,
        alt: str | None,
        base: Path,
        source: YamlFile | None,
        at: Keys,
    ) -> ImageView | None:
        """An image field of a YAML file, as the templates see it."""
        if ref is None:
            return None
        url = self.session.asset_url(ref, alt, base, source.location(*at) if source else None)
        return ImageView(url=url or ref, alt=alt or "")

    # -- sections, by their kind's fields

    def section(self, index: int, kind: Kind, data: dict[str, Any]) -> SimpleNamespace:
        """The section as its partial sees it: every declared field present, Markdown
        rendered, images resolved; a field not given is None, "" or []."""
        return SimpleNamespace(
            kind=kind.name, **self.fields(kind.fields, data, ("sections", index))
        )

    def fields(self, specs: dict[str, FieldDecl], data: dict[str, Any], at: Keys) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in specs.items():
            if spec.type == "markdown":
                out[name] = self.markdown_field(name, data, at)
            elif spec.type == "image":
                alt = data.get(alt_name(name))
                folder, source = self.loaded.folder, self.loaded.source
                out[name] = self.image(data.get(name), alt, folder, source, (*at, name))
            else:
                out[name] = self.value(spec, data.get(name), (*at, name))
        return out

    def value(self, spec: FieldDecl, value: Any, at: Keys) -> Any:
        source, folder = self.loaded.source, self.loaded.folder
        if spec.type == "list":
            of = spec.of or "inline"
            values = value or []
            if isinstance(of, dict):
                specs = declared(of)
                return [
                    SimpleNamespace(**self.fields(specs, entry, (*at, i)))
                    for i, entry in enumerate(values)
                ]
            return [
                self.value(FieldDecl(type=of), entry, (*at, i)) for i, entry in enumerate(values)
            ]
        if spec.type == "rows":
            return [
                [self.inline(str(cell), (*at, i)) for cell in row]
                for i, row in enumerate(value or [])
            ]
        if spec.type == "inline":
            return self.inline(str(value), at) if value is not None else Markup("")
        if spec.type == "markdown":
            return (
                self.markdown.render(str(value), folder, source.text_location(*at))
                if value
                else Markup("")
            )
        if spec.type == "image":
            return self.image(value, None, folder, source, at)
        if spec.type == "button" and value is not None:
            return ButtonView(label=value["label"], url=value["url"], colour=value.get("colour"))
        return value

    def inline(self, text: str, at: Keys) -> Markup:
        return self.markdown.inline(text, self.loaded.source.location(*at))

    def markdown_field(self, name: str, data: dict[str, Any], at: Keys) -> Markup:
        """A markdown field written inline, or read from the file its `<name>_file` twin names."""
        source, folder = self.loaded.source, self.loaded.folder
        text, file = data.get(name), data.get(f"{name}_file")
        if text is not None and file is not None:
            self.session.error(
                f"a section has either {name} or {name}_file, not both",
                source.location(*at, f"{name}_file"),
            )
            return Markup("")
        if file is not None:
            return self.markdown.file(folder, file, source.location(*at, f"{name}_file"))
        if text is not None:
            return self.markdown.render(str(text), folder, source.text_location(*at, name))
        return Markup("")

    # -- the layout's frame: banner, footer, social links

    def banner(
        self, layout_dir: Path, settings: LayoutSettings, settings_source: YamlFile | None
    ) -> BannerView | None:
        """The campaign's banner, else the layout's."""
        loaded = self.loaded
        own = loaded.campaign.banner
        banner, base, source = (
            (own, loaded.folder, loaded.source)
            if own
            else (settings.banner, layout_dir, settings_source)
        )
        if banner is None:
            return None
        if banner.link is not None:
            self.check_link(banner.link, source.location("banner", "link") if source else None)
        return BannerView(
            image=self.image(banner.image, banner.alt, base, source, ("banner", "image")),
            link=banner.link,
        )

    def footer(
        self, layout_dir: Path, settings: LayoutSettings, settings_source: YamlFile | None
    ) -> FooterView:
        """The footer: each field the campaign sets replaces the layout's, which replaces
        the organisation's (campaign.toml); a layout ships none of an organisation's words."""
        loaded, organisation = self.loaded, self.session.config.organisation
        own = (
            loaded.campaign.footer.model_dump(exclude_unset=True) if loaded.campaign.footer else {}
        )
        footer = settings.footer.model_copy(update=own)

        def origin(name: str) -> tuple[Path, YamlFile | None]:
            return (loaded.folder, loaded.source) if name in own else (layout_dir, settings_source)

        image_base, image_source = origin("image")
        text_base, text_source = origin("disclaimer")
        disclaimer = footer.disclaimer or organisation.disclaimer
        where: Location | None
        if footer.disclaimer is None:
            where = Location(self.session.shown(self.session.config.workspace / "campaign.toml"))
        else:
            where = text_source.text_location("footer", "disclaimer") if text_source else None
        return FooterView(
            image=self.image(
                footer.image, footer.alt, image_base, image_source, ("footer", "image")
            ),
            disclaimer=self.markdown.render(disclaimer, text_base, where)
            if disclaimer
            else Markup(""),
            copyright_holder=footer.copyright_holder
            or organisation.copyright_holder
            or organisation.name,
        )

    def social(self) -> list[LinkView]:
        """The organisation's profiles ([organisation.social] in campaign.toml), for the social block."""
        where = Location(self.session.shown(self.session.config.workspace / "campaign.toml"))
        links = []
        for label, url in self.session.config.organisation.social.items():
            if self.check_link(url, where):
                links.append(LinkView(label=label, url=url))
        return links

    def check_link(self, url: str, where: Location | None) -> bool:
        try:
            check_url(url)
        except ValueError as exc:
            self.session.error(str(exc), where)
            return False
        return True
