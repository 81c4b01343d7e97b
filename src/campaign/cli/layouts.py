"""Commands: layouts (list), layouts copy."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign.cli.app import app, console, get_config
from campaign.workspace import copy_layout, layout_entries

layouts = typer.Typer(
    help="List the layouts campaigns may use, built-in or the workspace's own in layouts/,"
    " and which one is used; `layouts copy NAME` copies a built-in one to change it.",
    invoke_without_command=True,
)
app.add_typer(layouts, name="layouts")


@layouts.callback()
def list_command(ctx: typer.Context) -> None:
    """List every layout, where it comes from, and which one is used."""
    if ctx.invoked_subcommand is not None:
        return
    config = get_config()
    rows = [
        (
            entry.name,
            "workspace (replaces the built-in one)" if entry.overrides else entry.source,
            str(
                entry.folder.relative_to(config.workspace)
                if entry.source == "workspace"
                else entry.folder
            ),
        )
        for entry in layout_entries(config)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, used, folder in rows:  # plain aligned lines: a long path never wraps
        line = f"{name.ljust(widths[0])}  {used.ljust(widths[1])}  {folder}"
        console.print(line, markup=False, soft_wrap=True)


@layouts.command("copy")
def copy_command(
    name: Annotated[str, typer.Argument(help="The built-in layout to copy, e.g. newsletter.")],
) -> None:
    """Copy a built-in layout into layouts/NAME/ to change it; the copy is then used."""
    folder = copy_layout(get_config(), name)
    console.print(
        f"copied the built-in layout {name!r} to {folder}: campaigns using it now use this copy",
        markup=False,
        soft_wrap=True,
    )
