"""Command: send (`campaign status` is in cli/report.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from campaign.assets import store_assets
from campaign.audience import addresses
from campaign.audience.choice import Segment, choose
from campaign.cli.app import app, console, err_console, get_config
from campaign.cli.report import summary_lines
from campaign.cli.schedule import schedule_instead
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect
from campaign.errors import UserError
from campaign.placeholders import shown
from campaign.schedule import resolve_time
from campaign.send import ledger, recovery
from campaign.send.lease import Keeper

if TYPE_CHECKING:
    from campaign.providers import HostedService
    from campaign.send import Progress as SendProgress

# The compiler, the engine and the mail services are imported by the functions that use
# them: `campaign send --help` and `campaign schedule` do without them.


def _say(line: str, style: str | None = None) -> None:
    console.print(line, style=style, markup=False, soft_wrap=True, highlight=False)


def _addresses(values: list[str]) -> list[str]:
    found = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    found.append(addresses.checked(part))
                except addresses.InvalidAddress as exc:
                    raise UserError(f"--test {part.strip()!r}: {exc}") from None
    return found


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


class _Reporter:
    """A rich progress bar on a terminal; otherwise a plain line every few seconds (cron, logs).
    Queueing the recipients shows first (minutes for a million); the rate counts from the
    first message sent."""

    def __init__(self, total: int) -> None:
        self.terminal = console.is_terminal
        self.total = total
        self.last = time.monotonic()
        self.bar: Progress | None = None
        self.queue: TaskID | None = None
        self.task: TaskID | None = None
        if self.terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.start()

    def __call__(self, progress: SendProgress) -> None:
        if progress.queueing:
            self._queueing(progress.queued)
        elif self.bar is not None:
            if self.task is None:  # its clock starts with the first batch
                self.task = self.bar.add_task("sending", total=progress.total)
            self.bar.update(self.task, total=progress.total, completed=progress.done)
        else:
            now = time.monotonic()
            if now - self.last >= 5 or progress.done == progress.total:
                self.last = now
                _say(
                    f"{progress.done}/{progress.total} done, {progress.rate(now):,.0f}/s: {progress.sent} sent, "
                    f"{f'{progress.bounced} bounced, ' if progress.bounced else ''}{progress.failed} failed, {progress.unknown} unknown, {progress.skipped} skipped"
                )

    def _queueing(self, queued: int) -> None:
        if self.bar is None:
            _say(f"queueing: {queued}{f'/{self.total}' if self.total else ''} recipients")
            return
        if self.queue is None:
            self.queue = self.bar.add_task("queueing", total=self.total or None)
        self.bar.update(self.queue, completed=queued)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise UserError("not sending: no terminal to confirm on; add --yes to send without asking")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


@app.command("send")
def send_command(
    campaign: Annotated[
        str, typer.Argument(help="A slug under campaigns/, or the path of a campaign folder.")
    ],
    list_name: Annotated[
        str | None, typer.Option("--list", "-l", help="The list to send to.")
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Only members who chose this topic (repeatable)."),
    ] = None,
    dry: Annotated[
        bool,
        typer.Option("--dry-run", help="Build every message and run every check; send nothing."),
    ] = False,
    test: Annotated[
        list[str] | None,
        typer.Option(
            "--test", help="Send only to this address, [TEST] in the subject (repeatable)."
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="Only members meeting this condition (see the README)."),
    ] = None,
    segment_name: Annotated[
        str | None,
        typer.Option("--segment", help="Only members of this segment, saved in campaign.toml."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    resend_unknown: Annotated[
        bool,
        typer.Option(
            "--resend-unknown", help="Send again to recipients whose delivery is unknown."
        ),
    ] = False,
    retry_failed: Annotated[
        str | None,
        typer.Option(
            "--retry-failed",
            metavar="KINDS",
            help="Send failed deliveries again: all, or by kind (--retry-failed=rejected,temporary).",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help='Schedule for "2026-12-01 09:00" (campaign.toml\'s zone unless given) instead of sending now.',
        ),
    ] = None,
) -> None:
    """Send a campaign to a list, exactly once per recipient; run again to resume."""
    from campaign.compile import build
    from campaign.providers import hosted
    from campaign.send import dry_run

    config = get_config()
    compiled = build(config, campaign)
    for warning in compiled.warnings:
        err_console.print(warning, style="yellow", markup=False, soft_wrap=True)
    topics = topic or []
    segment = choose(config.segments, where, segment_name)
    condition = segment.condition if segment else None
    service = hosted(config)
    if segment and service is not None:
        raise UserError(
            "--where and --segment choose from our database; Mailchimp holds its audience"
        )
    _preflight(config, compiled, campaign)
    tests = _addresses(test) if test else None
    if dry and tests:
        _say(f"dry run: a test to {', '.join(tests)} through {config.provider.name}; nothing sent")
        return
    if service is not None:
        _send_hosted(config, compiled, service, tests=tests, dry=dry, yes=yes, at=at)
        return
    if tests:
        _send_test(config, compiled, tests)
        return
    if not list_name:
        raise UserError("say which list to send to: --list NAME (`campaign lists` shows them)")
    if dry:
        result = dry_run(config, compiled, list_name=list_name, topics=topics, segment=condition)
        _say(
            f"dry run of {compiled.slug}: subject {shown(compiled.subject)!r}, provider {result.provider}"
        )
        _say(f"to: {_audience(list_name, topics, segment)}")
        _say(f"{result.recipients} messages built ({result.bytes / 1e6:.1f} MB); nothing sent")
        if result.already_sent:
            _say(
                f"{result.already_sent} recipients already have it: a real send resumes and skips them"
            )
        if result.sample is not None:
            _say(
                f"first: To {result.sample.to_email}; List-Unsubscribe {result.sample.headers['List-Unsubscribe']}"
            )
        for reason in result.refused:
            _say(f"would fail: {reason}")
        return
    if schedule_instead(config, compiled, list_name, topics, at, condition):
        return
    _send(
        config,
        compiled,
        list_name,
        topics,
        segment,
        yes=yes,
        resend_unknown=resend_unknown,
        retry_kinds=recovery.parse_kinds(retry_failed) if retry_failed is not None else (),
    )


def _audience(list_name: str, topics: list[str], segment: Segment | None) -> str:
    return (
        f"list {list_name}"
        + (f" (topics: {', '.join(topics)})" if topics else "")
        + (f", {segment}" if segment else "")
    )


def _preflight(config: Config, compiled: Compiled, campaign: str) -> None:
    """Print every preflight check (on stderr, with the build's warnings); stop (exit 1,
    nothing sent) on an error."""
    from campaign.compile import campaign_folder
    from campaign.preflight import preflight

    report = asyncio.run(
        preflight(
            config,
            compiled,
            campaign_folder(config, campaign),
            engine=connect(config.database_url),
        )
    )
    for line, level in [(report.heading, "ok"), *((f"  {c}", c.level) for c in report.checks)]:
        style = {"error": "red", "warning": "yellow"}.get(level)
        err_console.print(line, style=style, markup=False, soft_wrap=True, highlight=False)
    if report.errors:
        raise typer.Exit(1)


def _sender_lines(config: Config, compiled: Compiled, audience: str) -> None:
    """What the confirmation shows: who it is from, where its links go, whom it reaches."""
    _say(f"campaign: {compiled.slug}")
    _say(f"subject:  {shown(compiled.subject)}")
    _say(f"from:     {compiled.from_}")
    _say(f"reply-to: {compiled.reply_to or '(the From address)'}")
    _say(f"links:    {config.public_base_url}")
    _say(f"provider: {config.provider.name}")
    _say(f"to:       {audience}")


def _send_hosted(
    config: Config,
    compiled: Compiled,
    service: HostedService,
    *,
    tests: list[str] | None,
    dry: bool,
    yes: bool,
    at: str | None,
) -> None:
    """A service holding the audience (Mailchimp) gets the campaign after the same checks:
    a test goes at once, a dry run calls nothing, a send or a schedule asks unless --yes."""
    when = None if tests else resolve_time(at, config.tz).at if at else compiled.send_at
    if dry:
        _say(
            f"dry run of {compiled.slug}: provider {config.provider.name}, {service.audience}; "
            "nothing sent"
        )
        return
    if not tests:
        _sender_lines(config, compiled, service.audience)
        if not yes:
            _confirm(f"Schedule for {when:%Y-%m-%d %H:%M %Z}?" if when else "Send now?")
    store_assets(connect(config.database_url), compiled)
    _say(asyncio.run(service.send(compiled, test_addresses=tests, at=when)))


def _send_test(config: Config, compiled: Compiled, addresses: list[str]) -> None:
    from campaign.providers import Status
    from campaign.send import send_test

    results = asyncio.run(send_test(config, compiled, addresses))
    failed = 0
    for address, result in zip(addresses, results, strict=True):
        if result.status is Status.ACCEPTED:
            _say(f"test sent to {address} ({result.provider_id})")
        else:
            failed += 1
            _say(f"test to {address}: {result.status.value}: {result.reason}", style="red")
    if failed:
        raise typer.Exit(1)


def _send(
    config: Config,
    compiled: Compiled,
    list_name: str,
    topics: list[str],
    segment: Segment | None,
    *,
    yes: bool,
    resend_unknown: bool,
    retry_kinds: tuple[str, ...] = (),
) -> None:
    from campaign.audience import Store
    from campaign.send import send_campaign

    config.secret_key  # noqa: B018  (a clear error before asking anything)
    engine = connect(config.database_url)
    count = Store(engine).count_recipients(list_name, topics, segment.node if segment else None)
    existing = ledger.summary(engine, compiled.slug)
    audience = _audience(list_name, topics, segment)
    _sender_lines(config, compiled, f"{audience}, {count} recipients")
    if existing is not None:
        _say(
            f"resuming: {existing.sent} already sent, {existing.pending} to go, {existing.unknown} unknown"
        )
    if not yes:
        _confirm("Send now?")
    for line in recovery.before_send(config, engine, compiled.slug, retry_kinds, resend_unknown):
        _say(line)
    reporter = _Reporter(count)
    worker_id = ledger.new_worker_id()
    try:
        with Keeper(engine, worker_id, config.send.lease_seconds):
            summary = asyncio.run(
                send_campaign(
                    config,
                    compiled,
                    list_name=list_name,
                    topics=topics,
                    segment=segment.condition if segment else None,
                    resend_unknown=resend_unknown,
                    progress=reporter,
                    worker_id=worker_id,
                )
            )
    finally:
        reporter.stop()
    if summary.content_changed:
        _say(
            "note: the campaign changed since this send began; it continued with the content it began with",
            "yellow",
        )
    if summary.interrupted:
        _say(
            f"{summary.interrupted} deliveries were in flight when an earlier run stopped: now unknown",
            "yellow",
        )
    for line in summary_lines(summary) + recovery.lines(engine, compiled.slug):
        _say(line)
    if not summary.ok:
        raise typer.Exit(1)
