"""The typer app every command module registers on, and what they share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from campaign.config import Config, load_config

app = typer.Typer(
    name="campaign",
    help="Email campaigns kept as files: build, preview, send, schedule, and host their pages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_workspace: Path | None = None


@app.callback()
def _options(
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
    """The workspace's settings, loaded for the command being run."""
    return load_config(_workspace)
