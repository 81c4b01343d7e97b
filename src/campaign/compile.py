"""Compile a campaign, once: layout (Jinja2) -> MJML -> HTML (mjml) -> CSS inlined (premailer) -> text.

The result, `Compiled`, holds placeholder tokens where each recipient's links and
merge fields go; later stages only fill them in. Nothing per recipient runs
Jinja, mjml or premailer.

Every problem found is collected as a `Diagnostic` naming its file and line, so one
build reports all the mistakes it can see; any error ends in one `BuildError`.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_lib
import logging
import re
import shutil
import traceback
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import mjml  # type: ignore[import-untyped]
import premailer  # type: ignore[import-untyped]
from inscriptis import get_text  # type: ignore[import-untyped]
from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
)
from markdown_it import MarkdownIt
from markupsafe import Markup

from campaign import placeholders
from campaign.compiled import Asset, Compiled
from campaign.config import Config
from campaign.errors import BuildError, Diagnostic, Location, UserError
from campaign.links import Links
from campaign.load import (
    LAYOUT_TEMPLATE,
    Item,
    LayoutSettings,
    LoadedCampaign,
    Section,
    YamlFile,
    layouts,
    load_campaign,
    load_layout_settings,
    shown_path,
)

PARTIALS = "partials"
MAX_HTML_BYTES = 102 * 1024
"""Gmail clips a message whose HTML is larger than this ("[Message clipped]"), hiding the footer."""
WARN_HTML_BYTES = 80 * 1024
COLOR_SCHEME_META = (
    '<meta name="color-scheme" content="light dark">\n'
    '    <meta name="supported-color-schemes" content="light dark">'
)
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MERGE_TAG = re.compile(r"(?<!\{)\{\{\s*([^{}]*?)\s*\}\}(?!\})")
_ENCODED_TOKEN = re.compile(
    r"%7B%7B%7B(link|field):([A-Za-z_][A-Za-z0-9_]*)%7D%7D%7D", re.IGNORECASE
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REMOTE = ("http://", "https://")


def sent_size(html: str, public_base_url: str, slug: str) -> int:
    """The HTML's size as a recipient gets it: each link token counted at the length of a
    real signed link (merge fields at their token's length), since Gmail clips what arrives."""
    links = Links("size-estimate", public_base_url)
    typical_id = "x" * 22  # the length of a subscriber's public id
    size = len(html.encode("utf-8"))
    for match in placeholders.PATTERN.finditer(html):
        if match.group(1) == "link":
            name = match.group(2)
            url = links.view_url(slug) if name == "view" else links.url(name, typical_id, slug)  # type: ignore[arg-type]
            size += len(url) - len(match.group(0))
    return size


def campaign_folder(config: Config, ref: str | Path) -> Path:
    """The folder of a campaign given as a slug under campaigns/ or as a path."""
    as_path = Path(ref)
    for candidate in (config.campaigns_dir / as_path, as_path):
        if (candidate / "campaign.yaml").is_file():
            return candidate.resolve()
    if as_path.is_dir():
        return as_path.resolve()
    raise UserError(
        f"no campaign {str(ref)!r}: neither {shown_path(config.campaigns_dir / as_path, config.workspace)}/ nor {ref}/ holds a campaign.yaml"
    )


def build(config: Config, ref: str | Path) -> Compiled:
    """Compile the campaign `ref` (a slug under campaigns/ or a folder).

    Raises BuildError with every diagnostic when there is any error; warnings of a
    successful build are in `Compiled.warnings` as "file:line: warning: ..." strings.
    """
    return _Build(config).run(campaign_folder(config, ref))


def render_mjml(config: Config, ref: str | Path) -> str:
    """The MJML that `build` hands to mjml for campaign `ref`: to debug a layout, or to benchmark."""
    return _Build(config).mjml(campaign_folder(config, ref))[2]


def write_output(compiled: Compiled, out: Path) -> None:
    """Write out/index.html, out/index.txt and out/assets/<fingerprinted images>."""
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(compiled.html, encoding="utf-8")
    (out / "index.txt").write_text(compiled.text, encoding="utf-8")
    for asset in compiled.assets:
        source = Path(asset.path)
        if not source.is_file() or _fingerprint(source.read_bytes()) not in asset.name:
            raise UserError(
                f"{asset.source} changed or vanished since the build: build again",
                Location(asset.source),
            )
        shutil.copyfile(source, assets / asset.name)


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


def plain_text(html: str) -> str:
    """The text alternative: links as [text](url), image alt texts in brackets.

    inscriptis lays layout tables out as columns; email tables are only layout, so
    each line is trimmed and runs of blank lines become one.
    """
    raw = get_text(html, ParserConfig(display_links=True, display_images=True))
    lines = [line.strip() for line in raw.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def inline_css(html: str) -> str:
    """premailer with the options email needs: no network, <style> kept with its !important
    (the responsive @media rules depend on both), no validation of mjml's CSS."""
    inlined = str(
        premailer.Premailer(
            html,
            allow_network=False,
            keep_style_tags=True,
            strip_important=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )
    # premailer drops the doctype; without it browsers render in quirks mode.
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined
    return squeeze(inlined)


def squeeze(html: str) -> str:
    """Drop the indentation mjml writes (a fifth of the size) outside <pre>: Gmail clips at 102 KB."""
    parts = re.split(r"(<pre[\s>].*?</pre>)", html, flags=re.DOTALL | re.IGNORECASE)
    return "".join(
        part if i % 2 else re.sub(r"\n[ \t]+", "\n", part) for i, part in enumerate(parts)
    )


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


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


@functools.lru_cache(maxsize=16)
def _environment(layout_dir: Path) -> Environment:
    """One Jinja environment per layout folder, so templates compile once per process.

    Jinja checks each template's modification time, so edits are seen at once.
    """
    return Environment(
        loader=FileSystemLoader(str(layout_dir)),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


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


class _Build:
    """One build: collects diagnostics, the files read and the assets used."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.diagnostics: list[Diagnostic] = []
        self.sources: dict[str, str] = {}
        self.assets: dict[str, Asset] = {}
        self.markdown = MarkdownIt("commonmark")

    # -- bookkeeping

    def error(self, message: str, location: Location | None) -> None:
        self.diagnostics.append(Diagnostic("error", message, location))

    def warning(self, message: str, location: Location | None) -> None:
        self.diagnostics.append(Diagnostic("warning", message, location))

    def stop_on_errors(self) -> None:
        if any(d.level == "error" for d in self.diagnostics):
            raise BuildError(self.diagnostics)

    def shown(self, path: Path) -> str:
        return shown_path(path, self.config.workspace)

    def record(self, path: Path, data: bytes) -> None:
        self.sources[self.shown(path)] = hashlib.sha256(data).hexdigest()

    def read_text(self, path: Path) -> str:
        data = path.read_bytes()
        self.record(path, data)
        return data.decode("utf-8")

    # -- the pipeline

    def run(self, folder: Path) -> Compiled:
        loaded, layout_dir, source = self.mjml(folder)
        html = self.inline(self.to_html(source, layout_dir), layout_dir)
        self.stop_on_errors()
        self.check_html(html, layout_dir, loaded.slug)
        self.stop_on_errors()

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
            assets=tuple(self.assets.values()),
            warnings=tuple(str(d) for d in self.diagnostics),
            source_hash=self.source_hash(),
            send_at=send_at,
            built_at=datetime.now(UTC),
            workspace=str(self.config.workspace),
            track_clicks=campaign.track_clicks or self.config.track_clicks,
            track_opens=self.config.track_opens
            if campaign.track_opens is None
            else campaign.track_opens,
        )

    def mjml(self, folder: Path) -> tuple[LoadedCampaign, Path, str]:
        """Load and check the campaign, then render its layout: the MJML source, and where it came from."""
        workspace = self.config.workspace
        loaded = load_campaign(folder, workspace)
        self.record(loaded.source.path, loaded.source.path.read_bytes())
        campaign = loaded.campaign
        layout_dir = self.layout_folder(loaded)
        settings, settings_source = load_layout_settings(layout_dir, workspace)
        if settings_source:
            self.record(settings_source.path, settings_source.path.read_bytes())

        banner = self.banner(loaded, layout_dir, settings, settings_source)
        footer = self.footer(loaded, layout_dir, settings, settings_source)
        sections = [
            self.section(loaded, index, section, layout_dir)
            for index, section in enumerate(campaign.sections)
        ]
        if not campaign.preheader:
            self.warning(
                "no preheader: inboxes will show the first words of the email instead",
                loaded.source.location("subject"),
            )
        self.stop_on_errors()

        for template in sorted(layout_dir.rglob("*.j2")):
            self.record(template, template.read_bytes())
        context = self.context(loaded, banner, footer)
        rendered = [
            Markup(
                self.render(layout_dir, f"{PARTIALS}/{s.kind}.mjml.j2", {**context, "section": s})
            )
            for s in sections
        ]
        self.stop_on_errors()
        source = self.render(layout_dir, LAYOUT_TEMPLATE, {**context, "sections": rendered})
        self.stop_on_errors()
        return loaded, layout_dir, source

    def layout_folder(self, loaded: LoadedCampaign) -> Path:
        name = loaded.campaign.layout
        available = layouts(self.config)
        folder = available.get(name, self.config.layouts_dir / name)
        if not _KIND.fullmatch(name) or name not in available:
            known = list(available)
            raise BuildError(
                [
                    Diagnostic(
                        "error",
                        f"unknown layout {name!r}: there is no {self.shown(folder / LAYOUT_TEMPLATE)}"
                        f" (layouts: {', '.join(known) or 'none'})",
                        loaded.source.location("layout"),
                    )
                ]
            )
        return folder

    def section(
        self, loaded: LoadedCampaign, index: int, section: Section, layout_dir: Path
    ) -> SectionView:
        """The section as its partial sees it: Markdown rendered, images resolved."""
        source, at = loaded.source, ("sections", index)
        partial = layout_dir / PARTIALS / f"{section.kind}.mjml.j2"
        if not _KIND.fullmatch(section.kind) or not partial.is_file():
            kinds = sorted(
                p.name.removesuffix(".mjml.j2")
                for p in (layout_dir / PARTIALS).glob("[!_]*.mjml.j2")
            )
            self.error(
                f"unknown section kind {section.kind!r}: the layout has no {self.shown(partial)}"
                f" (kinds: {', '.join(kinds) or 'none'})",
                source.location(*at, "kind"),
            )
        body = Markup("")
        if section.body is not None and section.body_file is not None:
            self.error(
                "a section has either body or body_file, not both",
                source.location(*at, "body_file"),
            )
        elif section.body is not None:
            body = self.render_markdown(
                section.body, loaded.folder, source.text_location(*at, "body")
            )
        elif section.body_file is not None:
            body = self.markdown_file(
                loaded.folder, section.body_file, source.location(*at, "body_file")
            )
        return SectionView(
            kind=section.kind,
            title=section.title,
            image=self.image(section.image, section.alt, loaded.folder, source, (*at, "image")),
            body=body,
            items=[
                self.item(loaded, item, (*at, "items", i)) for i, item in enumerate(section.items)
            ],
        )

    def item(self, loaded: LoadedCampaign, item: Item, at: tuple[str | int, ...]) -> ItemView:
        text = item.text
        return ItemView(
            title=item.title,
            when=item.when,
            link=item.link,
            image=self.image(item.image, item.alt, loaded.folder, loaded.source, (*at, "image")),
            text=self.render_markdown(text, loaded.folder, loaded.source.text_location(*at, "text"))
            if text
            else Markup(""),
        )

    def banner(
        self,
        loaded: LoadedCampaign,
        layout_dir: Path,
        settings: LayoutSettings,
        settings_source: YamlFile | None,
    ) -> BannerView | None:
        """The campaign's banner, else the layout's."""
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
        self,
        loaded: LoadedCampaign,
        layout_dir: Path,
        settings: LayoutSettings,
        settings_source: YamlFile | None,
    ) -> FooterView:
        """The layout's footer; each field the campaign's footer sets replaces the layout's."""
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
            disclaimer=self.render_markdown(footer.disclaimer, text_base, where)
            if footer.disclaimer
            else Markup(""),
            copyright_holder=footer.copyright_holder or self.config.organisation.name,
        )

    # -- Markdown and images

    def markdown_file(self, folder: Path, name: str, where: Location) -> Markup:
        path = (folder / name).resolve()
        if not path.is_file():
            self.error(f"Markdown file not found: {name}", where)
            return Markup("")
        if not self.inside(path, folder):
            self.error(f"Markdown file {name} is not a file of {self.shown(folder)}", where)
            return Markup("")
        try:
            text = self.read_text(path)
        except UnicodeDecodeError:
            self.error("not valid UTF-8", Location(self.shown(path)))
            return Markup("")
        return self.render_markdown(text, folder, Location(self.shown(path), 1))

    def render_markdown(self, text: str, base: Path, where: Location | None) -> Markup:
        """Markdown -> HTML with merge tags as tokens and local images fingerprinted.

        `where` is the file and first line of the text, so problems name their own line.
        """
        first = where.line if where and where.line else 1
        lines = text.splitlines()
        for offset, text_line in enumerate(lines):
            try:
                lines[offset] = markdown_merge_tags(text_line)
            except ValueError as exc:
                self.error(str(exc), Location(where.file, first + offset) if where else None)
        tokens = self.markdown.parse("\n".join(lines))
        for token in tokens:
            for child in token.children or ():
                if child.type == "image":
                    line = first + (token.map[0] if token.map else 0)
                    where_image = Location(where.file, line) if where else None
                    src = str(child.attrGet("src") or "")
                    url = self.asset_url(src, child.content, base, where_image)
                    child.attrSet("src", url or src)
        rendered = self.markdown.renderer.render(tokens, self.markdown.options, {})
        # markdown-it percent-encodes braces in link targets; tokens must stay byte for byte.
        return Markup(
            _ENCODED_TOKEN.sub(
                lambda m: placeholders.token(m.group(1).lower(), m.group(2)),  # type: ignore[arg-type]
                rendered,
            )
        )

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
        url = self.asset_url(ref, alt, base, source.location(*at) if source else None)
        return ImageView(url=url or ref, alt=alt or "")

    @staticmethod
    def inside(path: Path, folder: Path) -> bool:
        """Whether a campaign or layout may use `path`: a file in its own folder, not a dot-file.

        This keeps the workspace's .env (the signing key), its database and anything
        else outside the folder out of the email and out of assets/.
        """
        root = folder.resolve()
        return path.is_relative_to(root) and not any(
            part.startswith(".") for part in path.relative_to(root).parts
        )

    def asset_url(
        self, ref: str, alt: str | None, base: Path, where: Location | None
    ) -> str | None:
        """The URL of image `ref`: remote URLs as they are, local files fingerprinted under assets/."""
        if not alt or not alt.strip():
            self.error(
                f"image {ref} has no alt text: describe it for people who cannot see it", where
            )
        if ref.startswith(_REMOTE):
            return ref
        path = (base / ref).resolve()
        if not path.is_file():
            self.error(f"image file not found: {ref} (looked for {self.shown(path)})", where)
            return None
        if not self.inside(path, base):
            self.error(f"image {ref} is not a file of {self.shown(base)}", where)
            return None
        data = path.read_bytes()
        self.record(path, data)
        name = f"{path.stem}.{_fingerprint(data)}{path.suffix.lower()}"
        url = f"{self.config.public_base_url}/assets/{name}"
        self.assets[name] = Asset(
            name=name, url=url, size=len(data), source=self.shown(path), path=str(path)
        )
        return url

    # -- layout -> MJML -> HTML

    def context(
        self, loaded: LoadedCampaign, banner: BannerView | None, footer: FooterView
    ) -> dict[str, Any]:
        """What every template of the layout sees, besides `section` or `sections`."""
        campaign = loaded.campaign
        return {
            "link": lambda name: Markup(placeholders.link(name)),
            "field": lambda name: Markup(placeholders.field(name)),
            "campaign": campaign,
            "organisation": self.config.organisation,
            "banner": banner,
            "footer": footer,
            "year": (campaign.date or campaign.send_at or date.today()).year,
        }

    def render(self, layout_dir: Path, name: str, context: dict[str, Any]) -> str:
        """Render one template; any failure is an error at the template's file and line."""
        try:
            return _environment(layout_dir).get_template(name).render(context)
        except Exception as exc:  # noqa: BLE001  (a layout can fail in any way; the user sees where)
            self.error(
                f"{type(exc).__name__} in layout: {exc}",
                self.template_location(exc, layout_dir, name),
            )
            return ""

    def template_location(self, exc: Exception, layout_dir: Path, name: str) -> Location:
        if isinstance(exc, TemplateSyntaxError) and exc.filename:
            return Location(self.shown(Path(exc.filename)), exc.lineno)
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if Path(frame.filename).resolve().is_relative_to(layout_dir.resolve()):
                return Location(self.shown(Path(frame.filename)), frame.lineno)
        return Location(self.shown(layout_dir / name))

    def to_html(self, source: str, layout_dir: Path) -> str:
        """MJML -> HTML. mjml 0.12 never validates and crashes on some input: report it in the layout."""
        try:
            html: str = mjml.mjml_to_html(source).html
        except Exception as exc:  # noqa: BLE001  (AssertionError, KeyError, ValueError...: all mean bad MJML)
            self.error(*self.mjml_problem(exc, layout_dir))
            return ""
        if "<head>" not in html:
            self.error(
                "mjml produced no <head>", Location(self.shown(layout_dir / LAYOUT_TEMPLATE))
            )
            return ""
        return html.replace("<head>", "<head>\n    " + COLOR_SCHEME_META, 1)

    def mjml_problem(self, exc: Exception, layout_dir: Path) -> tuple[str, Location]:
        """What mjml choked on, and where in the layout: an unknown tag is found in its template."""
        if isinstance(exc, KeyError) and str(exc.args[0] if exc.args else "").startswith("mj-"):
            tag = exc.args[0]
            for path in sorted(layout_dir.rglob("*.mjml.j2")):
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    if f"<{tag}" in line:
                        return f"mjml does not know the tag <{tag}>", Location(
                            self.shown(path), number
                        )
            return f"mjml does not know the tag <{tag}>", Location(
                self.shown(layout_dir / LAYOUT_TEMPLATE)
            )
        detail = str(exc) or "no message"
        return (
            (
                f"mjml failed on the MJML this layout produced ({type(exc).__name__}: {detail});"
                " mjml 0.12 crashes on unknown tags, an mj-class with children, or an mj-font reusing a default name"
            ),
            Location(self.shown(layout_dir / LAYOUT_TEMPLATE)),
        )

    def inline(self, html: str, layout_dir: Path) -> str:
        if not html:
            return ""
        try:
            return inline_css(html)
        except Exception as exc:  # noqa: BLE001  (premailer on HTML mjml wrote: a layout problem, not a crash)
            self.error(
                f"inlining CSS failed ({type(exc).__name__}: {exc})",
                Location(self.shown(layout_dir / LAYOUT_TEMPLATE)),
            )
            return ""

    def check_html(self, html: str, layout_dir: Path, slug: str) -> None:
        where = Location(self.shown(layout_dir / LAYOUT_TEMPLATE))
        if placeholders.link("unsubscribe") not in html:
            self.error(
                "the email has no unsubscribe link: the layout must use {{ link('unsubscribe') }}",
                where,
            )
        address = self.config.organisation.address
        if address not in html and html_lib.escape(address, quote=False) not in html:
            self.error(
                "the email does not show the organisation's postal address (organisation.address in campaign.toml):"
                " the layout must show {{ organisation.address }}",
                where,
            )
        size = sent_size(html, self.config.public_base_url, slug)
        if size > MAX_HTML_BYTES:
            self.error(
                f"the HTML is {size / 1024:.1f} KB: Gmail clips messages over 102 KB, hiding the unsubscribe link",
                where,
            )
        elif size > WARN_HTML_BYTES:
            self.warning(
                f"the HTML is {size / 1024:.1f} KB, close to the 102 KB at which Gmail clips it",
                where,
            )
        if "fonts.googleapis.com" in html:
            self.warning(
                "the email loads Google Fonts (mjml's default font): set font-family on mj-all in mj-attributes",
                where,
            )

    def source_hash(self) -> str:
        digest = hashlib.sha256()
        settings = self.config.model_dump_json(
            include={"organisation", "public_base_url", "defaults", "timezone"}
        )
        digest.update(settings.encode())
        for name in sorted(self.sources):
            digest.update(f"\n{name}\0{self.sources[name]}".encode())
        return digest.hexdigest()


__all__ = [
    "MAX_HTML_BYTES",
    "WARN_HTML_BYTES",
    "build",
    "campaign_folder",
    "inline_css",
    "markdown_merge_tags",
    "plain_text",
    "render_mjml",
    "write_output",
]
