"""Section kinds: each one a partial and a small schema of its fields, in files.

A kind is `partials/<kind>.mjml.j2` with `partials/<kind>.yaml` beside it, listing
its fields and their types. The block library (campaign/blocks/) ships the common
kinds; a layout's own partials/ override them by name or add new ones, so a layout
adds a field or a kind without Python. Each schema becomes a pydantic model, so a
misspelt or missing field is an error at its campaign.yaml line, and `campaign
schema` describes every kind of every layout present.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from campaign.config import Config
from campaign.errors import BuildError, Diagnostic
from campaign.load import YamlFile, json_schema, layouts, read_yaml, validate

BLOCKS = Path(__file__).resolve().parent.parent / "blocks"
"""The block library: <kind>.mjml.j2 and <kind>.yaml for every built-in kind."""
PARTIALS = "partials"
GENERIC = "_section"
"""The schema of a partial that has none: the fields every section had before schemas."""
KIND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
LINK_SCHEMES = ("https:", "http:", "mailto:", "tel:")
_COLOUR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-z]{3,20}")
_UNSAFE_URL = re.compile(r"[\s\"'<>\\`]")

FieldType = Literal[
    "text", "markdown", "inline", "image", "url", "button", "colour", "integer", "boolean",
    "list", "rows",
]  # fmt: skip


def check_url(value: str) -> str:
    """A link as people may follow it: https, http, mailto or tel, nothing that leaves an attribute."""
    if not value.lower().startswith(LINK_SCHEMES):
        raise ValueError(f"{value!r} is not a link: use an https:, http:, mailto: or tel: URL")
    if _UNSAFE_URL.search(value):
        raise ValueError(f"{value!r} holds a space, quote or angle bracket: percent-encode it")
    return value


def check_colour(value: str) -> str:
    if not _COLOUR.fullmatch(value):
        raise ValueError(f"{value!r} is not a colour: write #1d4f91, #fff or a name such as teal")
    return value


Url = Annotated[str, AfterValidator(check_url)]
Colour = Annotated[str, AfterValidator(check_colour)]


class Button(BaseModel):
    """A button wherever it appears: what it says and where it goes."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, description="What the button says.")
    url: Url = Field(description="Where it goes: an https:, http:, mailto: or tel: URL.")
    colour: Colour | None = Field(default=None, description="Background; default: the layout's.")


class FieldDecl(BaseModel):
    """One field of a kind, as its schema file declares it."""

    model_config = ConfigDict(extra="forbid")

    type: FieldType
    description: str = ""
    required: bool = False
    of: FieldType | dict[str, FieldType | FieldDecl] | None = Field(
        default=None, description="For a list: the type of each entry, or its fields."
    )
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)


class KindFile(BaseModel):
    """partials/<kind>.yaml: what a kind is for, and its fields."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    fields: dict[str, FieldType | FieldDecl] | None = Field(
        default=None, description="Without it, the generic fields (title, image, body, items)."
    )


@dataclass(frozen=True)
class Kind:
    """A kind as a layout has it: its template, its fields and the model that checks them."""

    name: str
    template: str
    description: str
    fields: dict[str, FieldDecl]
    model: type[BaseModel]
    schema_file: Path


def declared(fields: dict[str, FieldType | FieldDecl]) -> dict[str, FieldDecl]:
    """Every field a kind has, shorthand types expanded; an image brings its alt text, a
    markdown field its `<name>_file` twin."""
    out: dict[str, FieldDecl] = {}
    for name, decl in fields.items():
        spec = decl if isinstance(decl, FieldDecl) else FieldDecl(type=decl)
        out[name] = spec
        if spec.type == "image":
            out.setdefault(
                alt_name(name), FieldDecl(type="text", description=f"Alt text of {name}.")
            )
        if spec.type == "markdown":
            out.setdefault(
                f"{name}_file",
                FieldDecl(
                    type="text", description=f"{name}, from a Markdown file of the campaign."
                ),
            )
    return out


def alt_name(image_field: str) -> str:
    return "alt" if image_field == "image" else f"{image_field}_alt"


def _annotation(spec: FieldDecl, model_name: str) -> Any:
    scalar: dict[str, Any] = {
        "text": str, "markdown": str, "inline": str, "image": str, "url": Url,
        "button": Button, "colour": Colour, "integer": int, "boolean": bool,
        "rows": list[list[str | int | float]],
    }  # fmt: skip
    if spec.type != "list":
        return scalar[spec.type]
    of = spec.of or "inline"
    entry = _model(f"{model_name}Item", declared(of), None) if isinstance(of, dict) else scalar[of]
    return list.__class_getitem__(entry)


def _model(name: str, fields: dict[str, FieldDecl], kind: str | None) -> type[BaseModel]:
    """A pydantic model of `fields`; each under its own name as an alias, so a field may
    be called anything (`json`, `copy`) without shadowing BaseModel."""
    definitions: dict[str, Any] = {}
    if kind is not None:
        definitions["kind"] = (Literal[kind], Field(description="Which kind of block this is."))
    for field_name, spec in fields.items():
        annotation = _annotation(spec, name)
        extra: dict[str, Any] = {"alias": field_name, "description": spec.description or None}
        if spec.type in ("list", "rows"):
            extra |= {"min_length": spec.min, "max_length": spec.max}
        if spec.required and spec.type != "markdown":  # a markdown field may come as <name>_file
            definitions[f"f_{field_name}"] = (annotation, Field(**extra))
        elif spec.type in ("list", "rows"):
            definitions[f"f_{field_name}"] = (annotation, Field(default_factory=list, **extra))
        else:
            definitions[f"f_{field_name}"] = (annotation | None, Field(default=None, **extra))
    config = ConfigDict(extra="forbid", populate_by_name=True, title=name)
    model: type[BaseModel] = create_model(name, __config__=config, **definitions)
    return model


def _read_kind(name: str, template: str, schema_file: Path, workspace: Path) -> Kind:
    """A kind from its schema file; one without `fields` has the generic ones."""
    source = read_yaml(schema_file, workspace)
    decl = validate(KindFile, source) if source.data is not None else KindFile()
    description, given = decl.description, decl.fields
    if given is None:
        generic = validate(KindFile, read_yaml(BLOCKS / f"{GENERIC}.yaml", workspace))
        description, given = description or generic.description, generic.fields or {}
    problems = [
        Diagnostic("error", f"field name {field!r}: use lowercase letters, digits and _", source.location("fields", field))
        for field in given
        if not FIELD_NAME.fullmatch(field) or field == "kind"
    ]  # fmt: skip
    if problems:
        raise BuildError(problems)
    fields = declared(given)
    model = _model(name.replace("-", "_").title().replace("_", "") + "Section", fields, name)
    return Kind(name, template, description, fields, model, schema_file)


@functools.lru_cache(maxsize=256)
def _cached_kind(
    name: str, template: str, schema_file: Path, mtime: float, workspace: Path
) -> Kind:
    return _read_kind(name, template, schema_file, workspace)


def kinds(layout_dir: Path, workspace: Path) -> dict[str, Kind]:
    """Every kind a campaign laid out with `layout_dir` may use: the library's, then the layout's own.

    A layout's partial without a schema file of its own takes the library's schema of
    that name, else the generic one (title, image, body, items).
    """
    partials: dict[str, Path] = {}
    for folder in (BLOCKS, layout_dir / PARTIALS):
        for path in sorted(folder.glob("[!_]*.mjml.j2")):
            name = path.name.removesuffix(".mjml.j2")
            if KIND_NAME.fullmatch(name):
                partials[name] = path
    found: dict[str, Kind] = {}
    for name in sorted(partials):
        schema_file = next(
            (
                p
                for p in (layout_dir / PARTIALS / f"{name}.yaml", BLOCKS / f"{name}.yaml")
                if p.is_file()
            ),
            BLOCKS / f"{GENERIC}.yaml",
        )
        found[name] = _cached_kind(
            name, f"{PARTIALS}/{name}.mjml.j2", schema_file, schema_file.stat().st_mtime, workspace
        )
    return found


def validate_section(
    kind: Kind, data: dict[str, Any], source: YamlFile, index: int
) -> list[Diagnostic]:
    """The problems of section `index` against its kind's fields, each at its own line."""
    problems = [
        _problem(kind, source, index, {"type": "missing", "loc": (name,)})
        for name, spec in kind.fields.items()
        if spec.required and spec.type == "markdown" and not {name, f"{name}_file"} & set(data)
    ]
    try:
        kind.model.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(kind, source, index, error) for error in exc.errors()]
    return problems


def _problem(kind: Kind, source: YamlFile, index: int, error: Any) -> Diagnostic:
    loc: tuple[str | int, ...] = ("sections", index, *error["loc"])
    *parent, last = loc
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parent).lstrip(".")
    if error["type"] == "missing":
        message = f"missing field '{last}' in {where} ({kind.name})"
    elif error["type"] == "extra_forbidden":
        message = f"unknown field '{last}' in {where}"
        known = _known(kind, parent[2:])
        message += f" ({kind.name}; known fields: {', '.join(known)})" if known else ""
    else:
        message = f"{where}.{last}: {error['msg']}".replace("Value error, ", "")
    return Diagnostic("error", message, source.location(*loc))


def _known(kind: Kind, path: list[str | int]) -> list[str]:
    fields: dict[str, FieldDecl] | None = {"kind": FieldDecl(type="text"), **kind.fields}
    for part in path:
        if isinstance(part, int) or fields is None:
            continue
        spec = fields.get(part)
        if spec is not None and spec.type == "button":
            return list(Button.model_fields)
        fields = declared(spec.of) if spec is not None and isinstance(spec.of, dict) else None
    return list(fields or ())


def campaign_schema(config: Config) -> dict[str, Any]:
    """JSON Schema of campaign.yaml with a section of every kind of every layout present."""
    schema = json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    variants: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for layout_dir in layouts(config).values():
        for kind in kinds(layout_dir, config.workspace).values():
            kind_schema = kind.model.model_json_schema(
                by_alias=True, ref_template="#/$defs/{model}"
            )
            defs.update(kind_schema.pop("$defs", {}))
            if kind_schema in seen.values():
                continue
            key = kind.model.__name__
            while key in seen:
                key += "_"
            seen[key] = kind_schema
            defs[key] = kind_schema | {
                "description": kind.description or kind_schema.get("description")
            }
            variants.append({"$ref": f"#/$defs/{key}"})
    schema["properties"]["sections"]["items"] = {"anyOf": variants}
    return schema
