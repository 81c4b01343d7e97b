"""Commands that read how sends went: status, report, reports (`campaign send` prints the
same summary lines as `campaign status`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app, console, get_config
from campaign.cli.output import Json, print_json
from campaign.config import CAMPAIGN_FILE, Config
from campaign.db import connect
from campaign.reports import (
    OPENS_CAVEAT,
    Report,
    all_reports,
    campaign_names,
    report,
    unknown_campaign,
)
from campaign.send import ledger, recovery
from campaign.send.ledger import Summary


def _slug(campaign: str) -> str:
    """A slug, or the path of a campaign folder."""
    return Path(campaign.rstrip("/\\")).name or campaign


def _say(line: str) -> None:
    console.print(line, markup=False, soft_wrap=True, highlight=False)


def summary_lines(summary: Summary) -> list[str]:
    """The ledger summary as `campaign send` and `campaign status` print it."""
    bounced = f"{summary.bounced} bounced (suppressed), " if summary.bounced else ""
    lines = [
        f"{summary.campaign}: {summary.status}; {summary.total} recipients: {summary.sent} sent, "
        f"{bounced}{summary.failed} failed, {summary.unknown} unknown, {summary.skipped} skipped, {summary.pending} pending"
    ]
    lines += [f"  failed ({count}): {reason}" for reason, count in summary.failed_reasons.items()]
    lines += [f"  unknown ({count}): {reason}" for reason, count in summary.unknown_reasons.items()]
    if summary.unknown:
        lines.append(
            "  unknown: the provider may or may not have taken these; check its log, then "
            "`campaign send ... --resend-unknown` to send them again"
        )
    if summary.note:
        lines.append(f"  {summary.note}")
    return lines


def report_lines(config: Config, found: Report) -> list[str]:
    """One send's report as `campaign report` prints it."""
    from campaign.schedule import format_local

    when = found.started_at or found.created_at
    ran = format_local(when, config.tz)
    if found.finished_at:
        ran += f" to {format_local(found.finished_at, config.tz)}"
    audience = found.list_name + (f" (topics: {', '.join(found.topics)})" if found.topics else "")
    hard_soft = f" ({found.bounced_hard} hard, {found.bounced_soft} soft)" if found.bounced else ""
    lines = [
        f"{found.campaign}: {found.status}",
        f"  ran:          {ran}",
        f"  to:           {audience}",
        f"  provider:     {found.provider or 'unknown'}",
        f"  recipients:   {found.recipients}",
        f"  sent:         {found.sent}",
        f"  delivered:    {found.delivered} confirmed by the service ({found.rate(found.delivered)}%)",
        f"  bounced:      {found.bounced}{hard_soft} ({found.rate(found.bounced)}%)",
        f"  complained:   {found.complained} ({found.rate(found.complained)}%)",
        f"  unsubscribed: {found.unsubscribed} ({found.rate(found.unsubscribed)}%)",
        f"  forwarded:    {found.forwarded}",
        f"  failed:       {found.failed}",
    ]
    lines += [f"    {count}: {reason}" for reason, count in found.failed_reasons.items()]
    lines += [f"  unknown:      {found.unknown}", f"  skipped:      {found.skipped}"]
    if found.pending:
        lines.append(f"  pending:      {found.pending}")
    if found.opened is not None:
        lines.append(f"  opened:       {found.opened} ({found.rate(found.opened)}%)")
        lines.append(f"    {OPENS_CAVEAT}")
    if found.clicks is not None:
        lines.append(f"  clicks:       {found.clicks} ({found.track_clicks})")
        for link in found.links:
            who = f", {link.clickers} people" if link.clickers is not None else ""
            lines.append(f"    {link.clicks}{who}: {link.url}")
    return lines


@app.command("report")
def report_command(
    campaign: Annotated[str, typer.Argument(help="A campaign slug (or its folder).")],
    json: Json = False,
) -> None:
    """How a campaign's send went: delivered, bounced, complained, unsubscribed, clicks, failed."""
    config = get_config()
    slug = _slug(campaign)
    engine = connect(config.database_url)
    found = report(engine, slug)
    if found is None:
        known = campaign_names(config.campaigns_dir, engine)
        if slug in known:
            raise unknown_campaign(slug, known, sent=False)
        raise unknown_campaign(slug, known)
    if json:
        print_json(found.as_json())
        return
    for line in report_lines(config, found):
        _say(line)


@app.command("reports")
def reports_command(json: Json = False) -> None:
    """Every send so far, newest first, one line each."""
    from campaign.schedule import format_local

    config = get_config()
    found = all_reports(connect(config.database_url))
    if json:
        print_json([item.as_json() for item in found])
        return
    if not found:
        _say("nothing sent yet")
    for item in found:
        when = format_local(item.started_at or item.created_at, config.tz)
        _say(
            f"{when}  {item.campaign}  {item.status}: {item.sent}/{item.recipients} sent, "
            f"{item.delivered} delivered, {item.bounced} bounced, {item.complained} complained, "
            f"{item.unsubscribed} unsubscribed, {item.failed} failed, {item.unknown} unknown"
            + (f", {item.clicks} clicks" if item.clicks is not None else "")
        )


def status_of(config: Config, campaign: str, *, json: bool) -> int:
    """`campaign status`: prints the ledger's counts; the exit code (0, or 2 while failed or
    unknown deliveries wait for a decision). No such campaign is an error (exit 1)."""
    slug = _slug(campaign)
    engine = connect(config.database_url)
    summary = ledger.summary(engine, slug)
    if summary is None:
        known = campaign_names(config.campaigns_dir, engine)
        if slug not in known and not (Path(campaign) / CAMPAIGN_FILE).is_file():
            raise unknown_campaign(slug, known)
        if json:
            print_json({"campaign": slug, "status": "not sent"})
        else:
            _say(f"{slug}: not sent yet")
        return 0
    waiting = 2 if summary.failed or summary.unknown else 0
    found = report(engine, slug)
    if json:
        data = asdict(summary) | {
            "recipients": summary.total,
            "sent": summary.sent,
            "bounced": summary.bounced,
            "failed": summary.failed,
            "unknown": summary.unknown,
            "skipped": summary.skipped,
            "pending": summary.pending,
        }
        if found is not None:
            data["since_sent"] = {
                key: getattr(found, key)
                for key in ("delivered", "bounced", "complained", "unsubscribed")
            }
        print_json(data)
        return waiting
    for line in summary_lines(summary) + recovery.lines(engine, summary.campaign):
        _say(line)
    if found is not None and (
        found.delivered or found.bounced or found.complained or found.unsubscribed
    ):
        _say(
            f"  since sent: {found.delivered} delivered, {found.bounced} bounced "
            f"({found.bounced_hard} hard, {found.bounced_soft} soft), {found.complained} complained, "
            f"{found.unsubscribed} unsubscribed (`campaign report {slug}` for more)"
        )
    return waiting


@app.command("status")
def status_command(
    campaign: Annotated[str, typer.Argument(help="A slug, or the path of a campaign folder.")],
    failed: Annotated[
        bool, typer.Option("--failed", help="List the failed addresses, with kind and reason.")
    ] = False,
    json: Json = False,
) -> None:
    """Show what the send of a campaign has done so far: sent, failed by reason, unknown, skipped.

    Exits 1 for no such campaign, 2 while failed or unknown deliveries wait for a decision."""
    config = get_config()
    code = status_of(config, campaign, json=json)
    if failed and not json:
        for failure in recovery.failed(connect(config.database_url), _slug(campaign)):
            _say(f"{failure.email}  {failure.kind}  {failure.reason}")
    raise typer.Exit(code)
