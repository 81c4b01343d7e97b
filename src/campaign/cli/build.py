"""Commands: build, new, schema."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app, console, err_console, get_config
from campaign.config import Config
from campaign.errors import UserError


@app.command("build")
def build_command(
    campaign: Annotated[
        str, typer.Argument(help="A slug under campaigns/, or the path of a campaign folder.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: site/<slug>).")
    ] = None,
) -> None:
    """Compile a campaign into DIR/index.html, DIR/index.txt and DIR/assets/."""
    from campaign.compile import build, write_output  # the compiler itself only on a miss

    config = get_config()
    started = time.perf_counter()
    compiled = build(config, campaign)
    elapsed = time.perf_counter() - started
    target = out if out is not None else config.workspace / "site" / compiled.slug
    write_output(compiled, target)
    for warning in compiled.warnings:
        err_console.print(warning, style="yellow", markup=False, soft_wrap=True)
    size = len(compiled.html.encode("utf-8"))
    console.print(
        f"built {compiled.slug}: HTML {size / 1024:.1f} KB, text {len(compiled.text.encode('utf-8')) / 1024:.1f} KB,"
        f" {len(compiled.assets)} images, in {elapsed * 1000:.0f} ms -> {target}",
        markup=False,
        soft_wrap=True,
    )


@app.command("new")
def new_command(
    slug: Annotated[
        str, typer.Argument(help="Folder name under campaigns/, e.g. 2024-05-newsletter.")
    ],
    layout: Annotated[
        str, typer.Option("--layout", "-l", help="Layout folder under layouts/.")
    ] = "newsletter",
) -> None:
    """Start a campaign from the layout's scaffold/ folder; it builds as it is."""
    from campaign.load import new_campaign

    folder = new_campaign(get_config(), slug, layout)
    console.print(
        f"created {folder}: edit campaign.yaml, then run: campaign build {slug}",
        markup=False,
        soft_wrap=True,
    )


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of campaign.yaml (for editors' YAML validation), with every
    section kind of the layouts present (outside a workspace: the built-in ones)."""
    from campaign.compile.kinds import campaign_schema

    try:
        config = get_config()
    except UserError:
        config = Config()
    typer.echo(json.dumps(campaign_schema(config), indent=2, ensure_ascii=False))
