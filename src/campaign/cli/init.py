"""Commands: init (start a workspace)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app, console, err_console
from campaign.errors import UserError
from campaign.workspace import (
    Organisation,
    check_from,
    check_new,
    check_public_url,
    check_text,
    init_workspace,
)


def _flag(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """A typer callback refusing a bad flag value with the check's message."""

    def callback(value: str | None) -> str | None:
        try:
            return None if value is None else check(value)
        except UserError as exc:
            raise typer.BadParameter(str(exc)) from None

    return callback


def _ask(label: str, check: Callable[[str], str]) -> str:
    """Prompt until the answer passes `check`; no default is ever proposed."""
    while True:
        try:
            return check(typer.prompt(label))
        except UserError as exc:
            err_console.print(f"{exc}", style="red", markup=False, soft_wrap=True)


_name = partial(check_text, what="the organisation's name")
_address = partial(check_text, what="the postal address")


@app.command("init")
def init_command(
    folder: Annotated[
        Path, typer.Argument(help="Folder of the new workspace (made if missing).")
    ] = Path("."),
    organisation: Annotated[
        str | None,
        typer.Option("--organisation", help="Your organisation's name.", callback=_flag(_name)),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Its postal address, shown in every email.", callback=_flag(_address)
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Where `campaign serve` will answer, e.g. https://news.your-domain.",
            callback=_flag(check_public_url),
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help='The sender: "Name <address@your-domain>".', callback=_flag(check_from)
        ),
    ] = None,
) -> None:
    """Start a workspace: campaign.toml, .env with a new signing key, .gitignore, layouts/,
    and a first campaign that builds. Asks for what the options do not give."""
    check_new(folder)  # before asking anything
    details = Organisation(
        name=organisation or _ask("Organisation name", _name),
        address=address or _ask("Postal address (shown in every email)", _address),
        public_url=public_url
        or _ask("Public URL (where `campaign serve` will answer)", check_public_url),
        from_=from_ or _ask('From ("Name <address@your-domain>")', check_from),
    )
    first = init_workspace(folder, details)
    root = folder.resolve()
    console.print(
        f"Created a workspace in {root}:\n"
        "  campaign.toml  settings: edit the provider to send for real\n"
        "  .env           CAMPAIGN_SECRET_KEY, the link-signing key: keep it secret\n"
        "  .gitignore     keeps the database, .env, site/ and outbox/ out of git\n"
        "  layouts/       your own layouts (`campaign layouts` lists the built-in ones)\n"
        f"  {first.relative_to(root)}/  your first campaign\n"
        f"Next: campaign build {first.name}   (or: campaign preview --open)",
        markup=False,
        soft_wrap=True,
    )
