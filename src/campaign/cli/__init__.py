"""The `campaign` command. Each module registers its commands on `app`; each
command parses arguments, calls one package function, and prints."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from campaign.cli import audience, build, preview, schedule, send, web  # noqa: F401  (register commands)
from campaign.cli.app import app, err_console
from campaign.errors import BuildError, CampaignError


def main(args: Sequence[str] | None = None) -> None:
    """Run the CLI; a user's mistake ends with its message and exit code 1, never a traceback."""
    try:
        app(args=list(args) if args is not None else None, prog_name="campaign")
    except BuildError as exc:
        for diagnostic in exc.diagnostics:
            err_console.print(str(diagnostic), style="red" if diagnostic.level == "error" else "yellow", markup=False)
        sys.exit(1)
    except CampaignError as exc:
        err_console.print(f"error: {exc}", style="red", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)


__all__ = ["app", "main"]
