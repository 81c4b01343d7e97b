"""What `campaign --help` lists, without importing any command's module.

The list of commands is all that help shows, yet registering the commands means
importing every module of campaign.cli, and with them SQLAlchemy and the rest: most
of the CPU `campaign --help` took. So help registers placeholders with these
summaries instead; tests/test_startup.py checks that the help they make is the one
the real commands make, word for word.
"""

from __future__ import annotations

import typer

SUMMARIES: dict[str, str] = {
    "lists": "Lists, with how many subscribers a send to each would reach.",
    "topics": "Topics (offered on the preferences page), with how many subscribers chose each.",
    "build": "Compile a campaign into DIR/index.html, DIR/index.txt and DIR/assets/.",
    "new": "Start a campaign from the layout's scaffold/ folder; it builds as it is.",
    "schema": "Print the JSON Schema of campaign.yaml (for editors' YAML validation), with every\n"
    "section kind of the layouts present (outside a workspace: the built-in ones).",
    "init": "Start a workspace: campaign.toml, .env with a new signing key, .gitignore, layouts/,\n"
    "and a first campaign that builds. Asks for what the options do not give.",
    "dkim": "Print the DKIM DNS record for [provider.dkim] (making the key file if there is none).",
    "mailbox": "Read the bounce mailbox once: bounces, feedback reports, unsubscribe requests. "
    "For cron.",
    "preview": "Preview campaigns in the browser as you edit them: live reload, phone and "
    "desktop widths.",
    "report": "How a campaign's send went: delivered, bounced, complained, unsubscribed, clicks, "
    "failed.",
    "reports": "Every send so far, newest first, one line each.",
    "schedule": "List scheduled, running, paused, missed and finished sends with their times.",
    "unschedule": "Cancel a scheduled send that has not started.",
    "dispatch": "Send every due schedule, resume interrupted sends, report missed ones. For cron.",
    "send": "Send a campaign to a list, exactly once per recipient; run again to resume.",
    "status": "Show what the send of a campaign has done so far: sent, failed by reason, "
    "unknown, skipped.",
    "form": "Print the signup form of a list as HTML to paste into your website (no script "
    "needed).",
    "serve": "Serve the archive, unsubscribe, preferences and forward pages, and the webhooks.",
    "subscribers": "Import, list, show, export, unsubscribe and delete subscribers.",
    "layouts": "List the layouts campaigns may use, built-in or the workspace's own in layouts/, "
    "and which one is used; `layouts copy NAME` copies a built-in one to change it.",
    "signups": "Unconfirmed signups of the hosted forms.",
}
"""Each command's summary, in the order help lists them (commands, then groups)."""


def _listed_only() -> None:
    """Never run: a command given on the command line has its own module imported."""


def register_summaries(app: typer.Typer, commands: set[str]) -> bool:
    """Register a placeholder per command for the help to list; False (nothing registered)
    when `commands` are not the ones summarised here, so the modules must be imported.

    Only on an app with nothing registered yet: a command registered later replaces its
    placeholder (the last of a name wins), one registered earlier would not."""
    if commands != set(SUMMARIES) or app.registered_commands or app.registered_groups:
        return False
    for name, summary in SUMMARIES.items():
        app.command(name, help=summary)(_listed_only)
    return True
