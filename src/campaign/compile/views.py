"""Loading views: the campaign and its layout's settings as the templates see them.

Markdown is rendered to HTML and images resolved to their final URLs here, so the
templates only place values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from campaign.compile.markdown import MarkdownRenderer
from campaign.compile.session import Session
from campaign.load import Item, LayoutSettings, LoadedCampaign, Section, YamlFile


@dataclass(frozen=True)
class ImageView:
    """An image as a template sees it: its final URL and its alt text."""

    url: str
    alt: str


@dataclass(frozen=True)
class ItemView:
    title: str | None
    when: str | None
    link: str | None
    image: ImageView | None
    text: Markup


@dataclass(frozen=True)
class SectionView:
    """A section as its partial sees it: Markdown rendered to HTML, images resolved."""

    kind: str
    title: str | None
    image: ImageView | None
    body: Markup
    items: list[ItemView]


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
        at: tuple[str | int, ...],
    ) -> ImageView | None:
        """An image field of a YAML file, as the templates see it."""
        if ref is None:
            return None
        url = self.session.asset_url(ref, alt, base, source.location(*at) if source else None)
        return ImageView(url=url or ref, alt=alt or "")

    def section(self, index: int, section: Section) -> SectionView:
        """The section as its partial sees it: Markdown rendered, images resolved."""
        loaded = self.loaded
        source, at = loaded.source, ("sections", index)
        body = Markup("")
        if section.body is not None and section.body_file is not None:
            self.session.error(
                "a section has either body or body_file, not both",
                source.location(*at, "body_file"),
            )
        elif section.body is not None:
            body = self.markdown.render(
                section.body, loaded.folder, source.text_location(*at, "body")
            )
        elif section.body_file is not None:
            body = self.markdown.file(
                loaded.folder, section.body_file, source.location(*at, "body_file")
            )
        return SectionView(
            kind=section.kind,
            title=section.title,
            image=self.image(section.image, section.alt, loaded.folder, source, (*at, "image")),
            body=body,
            items=[self.item(item, (*at, "items", i)) for i, item in enumerate(section.items)],
        )

    def item(self, item: Item, at: tuple[str | int, ...]) -> ItemView:
        loaded = self.loaded
        text = item.text
        return ItemView(
            title=item.title,
            when=item.when,
            link=item.link,
            image=self.image(item.image, item.alt, loaded.folder, loaded.source, (*at, "image")),
            text=self.markdown.render(text, loaded.folder, loaded.source.text_location(*at, "text"))
            if text
            else Markup(""),
        )

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
        return BannerView(
            image=self.image(banner.image, banner.alt, base, source, ("banner", "image")),
            link=banner.link,
        )

    def footer(
        self, layout_dir: Path, settings: LayoutSettings, settings_source: YamlFile | None
    ) -> FooterView:
        """The layout's footer; each field the campaign's footer sets replaces the layout's."""
        loaded = self.loaded
        own = (
            loaded.campaign.footer.model_dump(exclude_unset=True) if loaded.campaign.footer else {}
        )
        footer = settings.footer.model_copy(update=own)

        def origin(name: str) -> tuple[Path, YamlFile | None]:
            return (loaded.folder, loaded.source) if name in own else (layout_dir, settings_source)

        image_base, image_source = origin("image")
        text_base, text_source = origin("disclaimer")
        where = text_source.text_location("footer", "disclaimer") if text_source else None
        return FooterView(
            image=self.image(
                footer.image, footer.alt, image_base, image_source, ("footer", "image")
            ),
            disclaimer=self.markdown.render(footer.disclaimer, text_base, where)
            if footer.disclaimer
            else Markup(""),
            copyright_holder=footer.copyright_holder or self.session.config.organisation.name,
        )
