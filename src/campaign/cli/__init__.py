"""The `campaign` command. Each module registers its commands on the typer app of
campaign.cli.app; each command parses arguments, calls one package function, and prints.

Importing this package imports neither typer nor rich: `campaign --help` needs neither."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from campaign.cli.catalog import help_exit_code, print_help, register_summaries

COMMANDS: dict[str, str] = {
    "init": "init",
    "layouts": "layouts",
    "build": "build",
    "new": "build",
    "schema": "build",
    "subscribers": "audience",
    "lists": "audience",
    "topics": "audience",
    "send": "send",
    "status": "report",
    "report": "report",
    "reports": "report",
    "schedule": "schedule",
    "unschedule": "schedule",
    "dispatch": "schedule",
    "preview": "preview",
    "serve": "web",
    "mailbox": "mail",
    "dkim": "mail",
    "form": "signup",
    "signups": "signup",
}
"""Which module of campaign.cli registers each command. Only the module of the
command being run is imported, so `campaign build` does not load the web server,
the database layer and every mail service before it starts."""


def _command_name(args: Sequence[str]) -> str | None:
    """The command word in `args`, skipping the global options."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-w", "--workspace"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def register(args: Sequence[str] | None = None) -> None:
    """Import the module of the command in `args` (every module when there is none)."""
    from campaign.cli.app import app

    args = sys.argv[1:] if args is None else args
    # Shell completion runs with no arguments (the words are in the environment): it needs
    # every command's real options, so every module.
    completing = os.environ.get("_CAMPAIGN_COMPLETE") is not None
    name = None if completing else _command_name(args)
    if completing:
        modules = sorted(set(COMMANDS.values()))
    elif name in COMMANDS:
        modules = [COMMANDS[name]]
    elif "--version" in args:
        modules = []  # it prints and exits before any command
    elif name is None and register_summaries(app, set(COMMANDS)):
        modules = []  # help only: the list of commands, none of their modules
    else:
        modules = sorted(set(COMMANDS.values()))
    for module in modules:
        import_module(f"campaign.cli.{module}")


def main(args: Sequence[str] | None = None) -> None:
    """Run the CLI; a user's mistake ends with its message and exit code 1, never a traceback.

    `campaign --help` and `campaign` alone print the catalog's help (cli/catalog.py), without
    importing typer or any command's module.

    Run as the whole process (the `campaign` script, `python -m campaign`: no `args`), the
    start-up imports run with the cyclic garbage collector paused, and what they made is then
    frozen (gc.freeze): it lives until the process ends, so no collection walks it again, nor
    the one at exit (measured: a third of `campaign status`'s CPU). In-process callers (tests)
    pass `args` and keep the collector (and pydantic's plugins) as they are: frozen objects
    would outlive their use."""
    whole_process = args is None
    if whole_process:
        gc.disable()
        # We use no pydantic plugins; looking for them reads every installed package's metadata.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:] if args is None else list(args)
    code = help_exit_code(argv, set(COMMANDS))
    if code is None:
        register(argv)
    if whole_process:
        gc.freeze()
        gc.enable()
    if code is not None:
        print_help(asked=code == 0)
        sys.exit(code)
    from campaign.cli.app import app, err_console
    from campaign.errors import BuildError, CampaignError

    try:
        app(args=list(args) if args is not None else None, prog_name="campaign")
    except BuildError as exc:
        for diagnostic in exc.diagnostics:
            err_console.print(
                str(diagnostic),
                style="red" if diagnostic.level == "error" else "yellow",
                markup=False,
                soft_wrap=True,
            )
        sys.exit(1)
    except CampaignError as exc:
        err_console.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)


__all__ = ["COMMANDS", "main", "register"]
