"""Commands: schedule, unschedule, dispatch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from campaign.audience.tables import utcnow
from campaign.cli.app import app, console, get_config
from campaign.cli.output import Json, print_json
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect
from campaign.schedule import (
    Listed,
    Scheduled,
    ScheduleError,
    State,
    counts_line,
    find_schedule,
    format_local,
    list_schedules,
    preflight,
    schedule_send,
    unschedule,
)
from campaign.send.ledger import summary

if TYPE_CHECKING:
    from campaign.cli.send import _Reporter
    from campaign.send import Progress


@app.command("schedule")
def schedule_command(
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check", help="Skip rebuilding each campaign to see if its source changed."
        ),
    ] = False,
    json: Json = False,
) -> None:
    """List scheduled, running, paused, missed, held and finished sends with their times."""
    config = get_config()
    listed = list_schedules(config, check_source=not no_check)
    if json:
        print_json(
            [
                {
                    **asdict(item.schedule),
                    "state": item.state,
                    "send": item.send,
                    "source": item.source,
                }
                for item in listed
            ]
        )
        return
    if not listed:
        console.print("nothing scheduled")
        return
    rows = [
        ("campaign", "state", "send at", "list", "notes"),
        *(_row(config, item) for item in listed),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:  # plain aligned lines: no wrapping in cron mail or a pipe
        line = (
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[4]
        )
        console.print(line.rstrip(), markup=False, soft_wrap=True)


def _row(config: Config, item: Listed) -> tuple[str, str, str, str, str]:
    s = item.schedule
    audience = s.list_name + "".join(f" +{topic}" for topic in s.topics)
    audience += f" where {s.segment}" if s.segment else ""
    notes = []
    if s.started_at:
        notes.append(f"started {format_local(s.started_at, config.tz)}")
    if s.finished_at and item.state in (State.FINISHED, State.FAILED, State.PAUSED):
        notes.append(f"ended {format_local(s.finished_at, config.tz)}")
    if item.send is not None:
        notes.append(counts_line(item.send))
        if item.send.note:
            notes.append(item.send.note)
    elif s.detail:
        notes.append(s.detail)
    if item.source and item.source != "unchanged":
        notes.append(f"source {item.source}: schedule again to send the new content")
    return (
        s.campaign,
        str(item.state),
        format_local(s.send_at, config.tz),
        audience,
        "; ".join(notes),
    )


def schedule_instead(
    config: Config,
    compiled: Compiled,
    list_name: str,
    topics: Sequence[str],
    at: str | None,
    segment: str | None = None,
) -> bool:
    """For `campaign send`: schedule rather than send when --at is given, or when campaign.yaml
    has `send_at:` and the send has not begun (running it again resumes it). Prints what it did;
    False means: send now."""
    engine = connect(config.database_url)
    if at is None and (compiled.send_at is None or summary(engine, compiled.slug)):
        waiting = find_schedule(engine, compiled.slug)
        if waiting is not None and waiting.state == State.SCHEDULED:
            raise ScheduleError(
                f"{compiled.slug} is scheduled for {format_local(waiting.send_at, config.tz)}; "
                f"`campaign unschedule {compiled.slug}` first to send it now, "
                "or give --at to move it"
            )
        return False
    count = preflight(config, list_name, topics, segment)
    done = schedule_send(
        config, compiled, list_name=list_name, topics=topics, at=at, segment=segment
    )
    for line in describe(config, done):
        console.print(line, markup=False, soft_wrap=True)
    console.print(
        f"  {count:,} recipients on the list today; `campaign schedule` lists schedules",
        markup=False,
    )
    return True


def describe(config: Config, done: Scheduled) -> list[str]:
    """What `campaign send --at` prints after scheduling."""
    s = done.schedule
    lines = [
        f"{s.campaign}: {'rescheduled' if done.replaced else 'scheduled'} for "
        f"{format_local(s.send_at, config.tz)} to list {s.list_name!r}"
        f"{''.join(f' +{t}' for t in s.topics)}"
        f"{f' where {s.segment}' if s.segment else ''}; `campaign dispatch` (cron) sends it",
    ]
    if s.timezone != config.timezone and _is_zone(s.timezone):
        lines.append(f"  that is {format_local(s.send_at, ZoneInfo(s.timezone))}")
    if done.note:
        lines.append(f"  note: {done.note}")
    return lines


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):
        return False
    return True


@app.command("unschedule")
def unschedule_command(
    campaign: Annotated[str, typer.Argument(help="Campaign slug (or its folder).")],
) -> None:
    """Cancel a scheduled send that has not started."""
    config = get_config()
    removed = unschedule(config, campaign)
    console.print(
        f"{removed.campaign}: unscheduled (was due {format_local(removed.send_at, config.tz)})"
    )


@app.command("dispatch")
def dispatch_command(
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Help with a running send while fewer than this many dispatchers work on it "
            "(several hosts sharing PostgreSQL); together they keep to the rate limit.",
        ),
    ] = 1,
) -> None:
    """Send every due schedule, resume interrupted sends, report missed ones. For cron.

    Prints nothing when there is nothing to do; exits 1 when anything failed or was missed.
    """
    from campaign.dispatch import run_dispatch  # the engine: only for the command that sends

    config = get_config()

    def log(line: str) -> None:
        console.print(f"{_stamp(config)} {line}", markup=False, soft_wrap=True)

    bar = _Bar() if console.is_terminal else None  # cron and journald get the plain lines only
    try:
        report = run_dispatch(config, workers=workers, log=log, progress=bar)
    finally:
        if bar is not None:
            bar.stop()
    if not report.ok:
        raise typer.Exit(1)


class _Bar:
    """`campaign send`'s progress bar, started only once a send begins."""

    def __init__(self) -> None:
        self.reporter: _Reporter | None = None

    def __call__(self, progress: Progress) -> None:
        if self.reporter is None:
            from campaign.cli.send import _Reporter  # that module imports this one

            self.reporter = _Reporter(progress.total)
        self.reporter(progress)

    def stop(self) -> None:
        if self.reporter is not None:
            self.reporter.stop()


def _stamp(config: Config) -> str:
    """A timestamp for cron mail (journald adds its own, but mail does not)."""
    return utcnow().astimezone(config.tz).isoformat(timespec="seconds")
