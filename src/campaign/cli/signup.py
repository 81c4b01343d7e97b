"""Commands: form (the signup form's HTML for another website), signups purge."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from campaign.cli.app import app, console, get_config
from campaign.db import connect
from campaign.signup import flow
from campaign.signup.snippet import form_snippet


@app.command("form")
def form_command(
    list_name: Annotated[str, typer.Argument(help="A list with [lists.<name>] in campaign.toml.")],
) -> None:
    """Print the signup form of a list as HTML to paste into your website (no script needed)."""
    console.print(
        form_snippet(get_config(), list_name), markup=False, highlight=False, soft_wrap=True
    )


signups = typer.Typer(help="Unconfirmed signups of the hosted forms.", no_args_is_help=True)
app.add_typer(signups, name="signups")


@signups.command("purge")
def purge_command() -> None:
    """Delete unconfirmed signups older than [signup] purge_unconfirmed_days (also done on
    every signup)."""
    config = get_config()
    days = config.signup.purge_unconfirmed_days
    gone = flow.purge(connect(config.database_url), timedelta(days=days))
    console.print(f"{gone} unconfirmed signups older than {days} days deleted", markup=False)
