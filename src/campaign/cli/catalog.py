"""What `campaign --help` lists, without importing any command's module, nor typer.

The list of commands is all that help shows, yet registering the commands means
importing every module of campaign.cli, and with them SQLAlchemy and the rest; and
typer's help renderer imports Markdown, traceback and syntax highlighting support it
never uses here. So `campaign --help` (and `campaign` alone) is drawn by `print_help`
from the summaries below, with rich's table and panel laid out as typer lays them out;
tests/test_startup.py checks that it is the help the real commands make, character for
character, plain and in colour. Other typer output that lists the commands (an unknown
option, say) registers the summaries as placeholders instead (`register_summaries`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from rich.highlighter import RegexHighlighter

APP_HELP = "Email campaigns kept as files: build, preview, send, schedule, and host their pages."
VERSION_HELP = "Print the version and exit."
WORKSPACE_HELP = "Workspace folder (default: nearest folder with campaign.toml)."

SUMMARIES: dict[str, str] = {
    "lists": "Lists, with how many subscribers a send to each would reach.",
    "topics": "Topics (offered on the preferences page), with how many subscribers chose each.",
    "build": "Compile a campaign into DIR/index.html, DIR/index.txt and DIR/assets/.",
    "new": "Start a campaign from the layout's scaffold/ folder; it builds as it is.",
    "schema": "Print the JSON Schema of campaign.yaml (for editors' YAML validation), with every\n"
    "section kind of the layouts present (outside a workspace: the built-in ones).",
    "init": "Start a workspace: campaign.toml, .env with a new signing key, .gitignore, layouts/,\n"
    "and a first campaign that builds. Asks for what the options do not give.",
    "dkim": r"Print the DKIM DNS record for \[provider.dkim] (making the key file if there is none).",
    "mailbox": "Read the bounce mailbox once: bounces, feedback reports, unsubscribe requests. "
    "For cron.",
    "preview": "Preview campaigns in the browser as you edit them: live reload, phone and "
    "desktop widths.",
    "report": "How a campaign's send went: delivered, bounced, complained, unsubscribed, clicks, "
    "failed.",
    "reports": "Every send so far, newest first, one line each.",
    "status": "Show what the send of a campaign has done so far: sent, failed by reason, "
    "unknown, skipped.",
    "schedule": "List scheduled, running, paused, missed, held and finished sends with their times.",
    "unschedule": "Cancel a scheduled send that has not started.",
    "dispatch": "Send every due schedule, resume interrupted sends, report missed ones. For cron.",
    "send": "Send a campaign to a list, exactly once per recipient; run again to resume.",
    "form": "Print the signup form of a list as HTML to paste into your website (no script "
    "needed).",
    "serve": "Serve the archive, unsubscribe, preferences and forward pages, and the webhooks.",
    "subscribers": "Import, list, show, export, unsubscribe and delete subscribers.",
    "layouts": "List the layouts campaigns may use, built-in or the workspace's own in layouts/, "
    "and which one is used; `layouts copy NAME` copies a built-in one to change it.",
    "signups": "Unconfirmed signups of the hosted forms.",
}
"""Each command's summary, in the order help lists them (commands, then groups)."""

OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--version", "", "<bool>", VERSION_HELP),
    ("--workspace", "-w", "<path>", WORKSPACE_HELP),
    ("--install-completion", "", "<bool>", "Install completion for the current shell."),
    (
        "--show-completion",
        "",
        "<bool>",
        "Show completion for the current shell, to copy it or customize the installation.",
    ),
    ("--help", "", "<bool>", "Show this message and exit."),
)
"""The global options as help lists them: long form, short form, type, help (the last three
are typer's own)."""

_GLOBAL_WITH_VALUE = ("-w", "--workspace")


def _listed_only() -> None:
    """Never run: a command given on the command line has its own module imported."""


def register_summaries(app: typer.Typer, commands: set[str]) -> bool:
    """Register a placeholder per command for typer's own help and errors to list; False
    (nothing registered) when `commands` are not the ones summarised here, so the modules
    must be imported.

    Only on an app with nothing registered yet: a command registered later replaces its
    placeholder (the last of a name wins), one registered earlier would not."""
    if commands != set(SUMMARIES) or app.registered_commands or app.registered_groups:
        return False
    for name, summary in SUMMARIES.items():
        app.command(name, help=summary)(_listed_only)
    return True


def help_exit_code(args: Sequence[str], commands: set[str]) -> int | None:
    """The exit code of `campaign ARGS` if all it does is print the top-level help (0 for
    `--help`, 2 for no arguments at all, as typer exits), else None: typer runs it.

    Only the plain cases: global options with their values and `--help`, no completion,
    and typer's rich help (TYPER_USE_RICH unset)."""
    if commands != set(SUMMARIES) or "_CAMPAIGN_COMPLETE" in os.environ:
        return None
    if "TYPER_USE_RICH" in os.environ:
        return None
    if not args:
        return 2
    rest: list[str] = []
    words = iter(args)
    for word in words:
        if word in _GLOBAL_WITH_VALUE:
            if next(words, "--help") == "--help":
                return None  # the option has no value: typer says so
        else:
            rest.append(word)
    return 0 if rest == ["--help"] else None


def _console() -> Console:
    """A console set up as typer's help console (its styles, width and colour settings)."""
    from rich.console import Console
    from rich.theme import Theme

    forced = bool(os.getenv("GITHUB_ACTIONS") or os.getenv("FORCE_COLOR") or os.getenv("PY_COLORS"))
    width = os.getenv("TERMINAL_WIDTH")
    return Console(
        theme=Theme(
            {
                "option": "bold cyan",
                "switch": "bold green",
                "negative_option": "bold magenta",
                "negative_switch": "bold red",
                "types": "bold yellow",
                "types_sep": "dim",
                "usage": "yellow",
            }
        ),
        highlighter=_highlighters()[0],
        color_system="auto",
        force_terminal=False if os.getenv("_TYPER_FORCE_DISABLE_TERMINAL") else forced or None,
        width=int(width) if width else None,
    )


def _highlighters() -> tuple[RegexHighlighter, RegexHighlighter]:
    """typer's highlighters: of options, switches, types and `Usage:`; of `<type>` brackets."""
    from rich.highlighter import RegexHighlighter

    class Options(RegexHighlighter):
        highlights = [
            r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
            r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
            r"(?P<types>\<[^\>]+\>)",
            r"(?P<usage>Usage: )",
        ]

    class Types(RegexHighlighter):
        highlights = [
            r"^(?P<types_sep>(\[|<))",
            r"(?P<types_sep>\|)",
            r"(?P<types_sep>(\]|>))(\.\.\.)?$",
        ]

    return Options(), Types()


def print_help(*, asked: bool) -> None:
    """`campaign --help` (`asked`) or `campaign`, as typer prints them: usage, the app's help,
    options, commands."""
    from rich.align import Align
    from rich.columns import Columns
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    options, types = _highlighters()

    def markup(text: str) -> Text:
        return options(Text.from_markup(text, style=""))

    console = _console()
    console.print(Padding(options("Usage: campaign [OPTIONS] COMMAND [ARGS]..."), 1), style="bold")
    console.print(Padding(Align(markup(APP_HELP), pad=False), (0, 1, 1, 1)))
    table = Table(highlight=True, show_header=False, expand=True, box=None, pad_edge=False)
    for long, short, kind, text in OPTIONS:
        table.add_row(
            options(long),
            options(short),
            Text(""),
            Text(""),
            types(Text(kind, style="bold yellow", overflow="fold")),
            Columns([markup(text)]),
        )
    console.print(Panel(table, border_style="dim", title="Options", title_align="left"))
    table = Table(highlight=False, show_header=False, expand=True, box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True, width=max(map(len, SUMMARIES)))
    table.add_column("Description", justify="left", no_wrap=False, ratio=10)
    for name, summary in SUMMARIES.items():
        table.add_row(Text(name), markup(inspect.cleandoc(summary).split("\n\n")[0].strip()))
    console.print(Panel(table, border_style="dim", title="Commands", title_align="left"))
    if asked:
        console.print()  # click's own (empty) help text, echoed after typer's on --help
