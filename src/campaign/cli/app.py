"""The typer app every command module registers on, and what they share."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from campaign.config import Config, load_config, require_workspace

app = typer.Typer(
    name="campaign",
    help="Email campaigns kept as files: build, preview, send, schedule, and host their pages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_workspace: Path | None = None


def _print_version(value: bool) -> None:
    if value:
        console.print(f"campaign {version('campaign')}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: nearest folder with campaign.toml).",
        ),
    ] = None,
) -> None:
    global _workspace
    _workspace = workspace


def get_config() -> Config:
    """The workspace's settings, loaded for the command being run; without a workspace
    (no campaign.toml) the command stops before it creates anything."""
    return load_config(require_workspace(_workspace))
