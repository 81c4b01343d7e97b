"""The typer app every command module registers on, and what they share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from campaign.cli.catalog import APP_HELP, VERSION_HELP, WORKSPACE_HELP

if TYPE_CHECKING:
    from campaign.config import Config

app = typer.Typer(
    name="campaign",
    help=APP_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_workspace: Path | None = None


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # costly to import: only --version pays

        console.print(f"campaign {version('campaign')}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option("--version", help=VERSION_HELP, is_eager=True, callback=_print_version),
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help=WORKSPACE_HELP,
        ),
    ] = None,
) -> None:
    global _workspace
    _workspace = workspace


def get_config() -> Config:
    """The workspace's settings, loaded for the command being run; without a workspace
    (no campaign.toml) the command stops before it creates anything.

    The settings' models are imported here, by the commands that read them: not by help."""
    from campaign.config import load_config, require_workspace

    return load_config(require_workspace(_workspace))
