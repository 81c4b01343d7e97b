"""Campaign folder -> validated `Campaign`.

A campaign is a folder holding campaign.yaml and the Markdown files and images
it names. The pydantic models here are the one definition of that format: they
validate it, and `campaign schema` exports them as JSON Schema for editors.

YAML is parsed into nodes first, so every problem points at the line where it
is, even the ones pydantic finds after the YAML has become plain data.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from campaign.config import CAMPAIGN_FILE as CAMPAIGN_FILE  # its home, kept importable here
from campaign.config import Config
from campaign.errors import BuildError, Diagnostic, Location, UserError
from campaign.guards import parse_yaml

BUILTIN_LAYOUTS = Path(__file__).parent / "layouts"
LAYOUT_FILE = "layout.yaml"
LAYOUT_TEMPLATE = "layout.mjml.j2"
SCAFFOLD = "scaffold"
SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")


class _Model(BaseModel):
    # A misspelt field is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Section(BaseModel):
    """One block of the email, rendered by the partial of its kind. Its other fields are
    the kind's own, declared beside the partial (partials/<kind>.yaml) and checked at build."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(
        description="Which block it is: hero, text, button, columns, ... or any kind the layout adds."
    )

    @property
    def fields(self) -> dict[str, Any]:
        """The section's fields besides `kind`, as written."""
        return dict(self.model_extra or {})


class Banner(_Model):
    """The picture at the top of the email."""

    image: str = Field(description="Image file, or an http(s) URL.")
    alt: str | None = Field(default=None, description="Alt text of the image (required).")
    link: str | None = Field(
        default=None, description="URL the banner links to (https:, http:, mailto: or tel:)."
    )


class Footer(_Model):
    """The footer's own text; the organisation's name and postal address come from campaign.toml."""

    image: str | None = Field(default=None, description="Image shown above the footer text.")
    alt: str | None = Field(default=None, description="Alt text of the footer image.")
    disclaimer: str | None = Field(default=None, description="Disclaimer, Markdown.")
    copyright_holder: str | None = Field(
        default=None, description="Named in the copyright line; default: the organisation's name."
    )


class LayoutSettings(_Model):
    """layouts/<name>/layout.yaml: what every campaign of the layout shares, unless it sets its own."""

    banner: Banner | None = None
    footer: Footer = Footer()


class Campaign(_Model):
    """campaign.yaml: one email campaign."""

    model_config = ConfigDict(title="campaign.yaml", extra="forbid", populate_by_name=True)

    subject: str = Field(
        min_length=1,
        description='Subject line; merge fields ({{ first_name | default("friend") }}) are filled per recipient.',
    )
    preheader: str | None = Field(
        default=None,
        description="Hidden preview text shown after the subject in the inbox; merge fields are filled per recipient.",
    )
    from_: str | None = Field(
        default=None, alias="from", description="Sender; default: [defaults] from in campaign.toml."
    )
    reply_to: str | None = Field(
        default=None, description="Reply-To; default: [defaults] reply_to in campaign.toml."
    )
    layout: str = Field(description="Folder under layouts/ that lays the campaign out.")
    lang: str = Field(
        default="en",
        pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$",
        description="Language of the content, e.g. en or fr-CA (the lang attribute of <html>).",
    )
    title: str | None = Field(
        default=None, description="Masthead line under the banner, e.g. the issue's month."
    )
    date: dt.date | None = Field(
        default=None,
        description="Date of the issue; its year is the copyright year (default: today).",
    )
    send_at: dt.datetime | None = Field(
        default=None,
        description="When a scheduled send goes out; without a zone, the workspace's time zone.",
    )
    track_clicks: Literal["off", "aggregate", "per-subscriber"] | None = Field(
        default=None,
        description="Count clicks through signed redirects (overrides campaign.toml's).",
    )
    track_opens: bool | None = Field(
        default=None, description="Add an open-counting image (overrides campaign.toml's)."
    )
    banner: Banner | None = Field(default=None, description="Overrides the layout's banner.")
    footer: Footer | None = Field(
        default=None, description="Overrides fields of the layout's footer."
    )
    sections: list[Section] = Field(
        default_factory=list, description="The newsletter's blocks, top to bottom."
    )
    html_in_markdown: bool = Field(
        default=False,
        description="Let raw HTML in Markdown through (an escape hatch); otherwise it shows as text.",
    )


@dataclass(frozen=True)
class YamlFile:
    """A parsed YAML file that still knows the line of every key and value."""

    path: Path
    shown: str
    """The path as shown in messages (relative to the workspace when inside it)."""
    data: Any
    root: yaml.Node | None

    def location(self, *keys: str | int) -> Location:
        """Where the value at `keys` is, or the nearest enclosing key that exists."""
        return Location(self.shown, self._find(keys)[0])

    def text_location(self, *keys: str | int) -> Location:
        """Where the text of the string at `keys` starts: for a block scalar (| or >), the line after its key."""
        line, node = self._find(keys)
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            line = node.start_mark.line + 2
        return Location(self.shown, line)

    def _find(self, keys: Sequence[str | int]) -> tuple[int, yaml.Node | None]:
        line, node = 1, self.root
        for key in keys:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(key):
                        line, child = key_node.start_mark.line + 1, value_node
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(key, int)
                and key < len(node.value)
            ):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                return line, None
            node = child
        return line, node


def shown_path(path: Path, workspace: Path) -> str:
    """`path` relative to the workspace when it is inside it: short and clear in messages.

    A built-in layout's file is shown as `built-in:layouts/<name>/...`, so a message
    says which layout file it means without a site-packages path.
    """
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(workspace.resolve()))
    except ValueError:
        pass
    try:
        return f"built-in:{resolved.relative_to(BUILTIN_LAYOUTS.parent)}"
    except ValueError:
        return str(path)


def read_yaml(path: Path, workspace: Path) -> YamlFile:
    """Parse a YAML file into data and nodes; a syntax error or a file past the limits of
    `guards` (size, depth, aliases, NUL, links) is a BuildError at its line."""
    shown = shown_path(path, workspace)
    root, data = parse_yaml(path, shown)
    return YamlFile(path, shown, data, root)


def validate(model: type[BaseModel], source: YamlFile) -> Any:
    """The file's data as `model`; every field problem is one error naming the field and its line."""
    if not isinstance(source.data, dict):
        found = "an empty file" if source.data is None else type(source.data).__name__
        raise BuildError(
            [
                Diagnostic(
                    "error",
                    f"expected a mapping of fields, found {found}",
                    Location(source.shown, 1),
                )
            ]
        )
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        raise BuildError([_field_problem(model, source, error) for error in exc.errors()]) from None


def _field_problem(model: type[BaseModel], source: YamlFile, error: Any) -> Diagnostic:
    loc: Sequence[str | int] = error["loc"]
    *parent, last = loc if loc else ("",)
    where = _dotted(parent)
    inside = f" in {where}" if where else ""
    if error["type"] == "missing":
        message = f"missing field '{last}'{inside}"
    elif error["type"] == "extra_forbidden":
        known = _known_fields(model, parent)
        message = f"unknown field '{last}'{inside}" + (
            f" (known fields: {', '.join(known)})" if known else ""
        )
    else:
        message = f"{_dotted(loc)}: {error['msg']}"
    return Diagnostic("error", message, source.location(*loc))


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_fields(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The field names allowed at `path` inside `model`, for a helpful 'unknown field' message."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None or isinstance(part, int):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
        )
        current = _model_in(field.annotation) if field else None
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[Item]` or `Footer | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if found := _model_in(arg):
            return found
    return None


@dataclass(frozen=True)
class LoadedCampaign:
    """A validated campaign and where it came from, so later checks can name lines."""

    campaign: Campaign
    folder: Path
    source: YamlFile

    @property
    def slug(self) -> str:
        return self.folder.name


def load_campaign(folder: Path, workspace: Path) -> LoadedCampaign:
    """Read and validate folder/campaign.yaml; BuildError names the file and line of each problem."""
    path = folder / CAMPAIGN_FILE
    if not path.is_file():
        raise BuildError(
            [
                Diagnostic(
                    "error",
                    f"no {CAMPAIGN_FILE} in this folder",
                    Location(shown_path(folder, workspace)),
                )
            ]
        )
    source = read_yaml(path, workspace)
    return LoadedCampaign(validate(Campaign, source), folder, source)


def load_layout_settings(folder: Path, workspace: Path) -> tuple[LayoutSettings, YamlFile | None]:
    """layouts/<name>/layout.yaml if the layout has one, else empty settings."""
    path = folder / LAYOUT_FILE
    if not path.is_file():
        return LayoutSettings(), None
    source = read_yaml(path, workspace)
    return validate(LayoutSettings, source), source


def json_schema() -> dict[str, Any]:
    """JSON Schema of campaign.yaml, for editors (e.g. the YAML language server)."""
    schema = Campaign.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def layouts(config: Config) -> dict[str, Path]:
    """Every layout a campaign may name, by name: the built-in ones, each replaced by the
    workspace's own `layouts/<name>/` of the same name."""
    found = {p.parent.name: p.parent for p in BUILTIN_LAYOUTS.glob(f"*/{LAYOUT_TEMPLATE}")}
    found |= {p.parent.name: p.parent for p in config.layouts_dir.glob(f"*/{LAYOUT_TEMPLATE}")}
    return dict(sorted(found.items()))


def new_campaign(config: Config, slug: str, layout: str) -> Path:
    """Create campaigns/<slug>/ from layouts/<layout>/scaffold/.

    The scaffold is copied as it is, except that $slug, $layout and $date in its
    campaign.yaml are filled in, so a layout decides what a new campaign starts with.
    """
    if not SLUG.fullmatch(slug):
        raise UserError(
            f"{slug!r} is not a campaign slug: use lowercase letters, digits, '-', '_' and '.'"
        )
    available = layouts(config)
    if layout not in available:
        known = ", ".join(available) or "none"
        raise UserError(
            f"unknown layout {layout!r}: there is no layouts/{layout}/{LAYOUT_TEMPLATE} (layouts: {known})"
        )
    scaffold = available[layout] / SCAFFOLD
    if not (scaffold / CAMPAIGN_FILE).is_file():
        raise UserError(
            f"layout {layout!r} has no {SCAFFOLD}/{CAMPAIGN_FILE} to start a campaign from",
            Location(shown_path(scaffold, config.workspace)),
        )
    folder = config.campaigns_dir / slug
    if folder.exists():
        raise UserError(f"{shown_path(folder, config.workspace)} already exists")
    shutil.copytree(scaffold, folder)
    path = folder / CAMPAIGN_FILE
    values = {"slug": slug, "layout": layout, "date": dt.date.today().isoformat()}
    path.write_text(
        Template(path.read_text(encoding="utf-8")).safe_substitute(values), encoding="utf-8"
    )
    return folder
