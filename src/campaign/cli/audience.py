"""Commands: `subscribers import|list|show|export|unsubscribe|delete`, `lists`, `topics`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.table import Table
from rich.text import Text

from campaign.audience import Store, Subscriber
from campaign.cli.app import app, console, get_config
from campaign.cli.output import Json, print_json
from campaign.config import SECRET_KEY_ENV
from campaign.errors import UserError

if TYPE_CHECKING:
    from campaign.audience.importer import ImportReport

# Importing, exporting and consent records are imported by the commands that use them:
# `lists`, `topics` and `subscribers list` start without them.

subscribers = typer.Typer(
    help="Import, list, show, export, unsubscribe and delete subscribers.", no_args_is_help=True
)
app.add_typer(subscribers, name="subscribers")

SHOWN_PROBLEMS = 20
"""Rows listed per kind of problem after an import; the rest are counted."""


def _store() -> Store:
    return Store.open(get_config())


@subscribers.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row: email, first_name, last_name or name, more columns."
        ),
    ],
    list_name: Annotated[
        str, typer.Option("--list", help="The list to add everyone to (created if new).")
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="A topic everyone in the file chose (repeatable)."),
    ] = None,
    resubscribe: Annotated[
        bool,
        typer.Option(
            "--resubscribe", help="Also bring back people who unsubscribed, bounced or complained."
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why --resubscribe is right (logged for each person)."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="The file's encoding if not UTF-8 (cp1252 for Excel's plain CSV)."),
    ] = None,
) -> None:
    """Import subscribers from a CSV file into a list."""
    from campaign.audience.importer import import_csv
    from campaign.cli.progress import Steps

    if resubscribe != (reason is not None):
        raise UserError(
            "--resubscribe and --reason go together: say why these people may be mailed again"
        )
    steps = Steps(f"importing {file.name}", console)
    try:
        report = import_csv(
            _store(),
            file,
            list_name,
            topic or [],
            resubscribe_reason=reason,
            encoding=encoding,
            on_progress=steps,
        )
    finally:
        steps.stop()
    _print_report(report)


def _print_report(report: ImportReport) -> None:
    console.print(
        f"{report.file}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged "
        f"in list {report.list_name!r}",
        markup=False,
    )
    if report.resubscribed:
        console.print(f"{report.resubscribed} resubscribed (reason logged)", markup=False)
    for title, rows in (
        ("invalid, not imported", report.invalid),
        ("duplicates of an earlier line, skipped", report.duplicates),
        (
            "imported, but not ASCII before the @: only SMTP servers with SMTPUTF8 can send to them",
            report.needs_smtputf8,
        ),
        (
            "unsubscribed, bounced or complained, skipped (use --resubscribe --reason TEXT)",
            report.suppressed_skipped,
        ),
    ):
        if rows:
            console.print(f"{len(rows)} {title}:", markup=False)
            for line, what in rows[:SHOWN_PROBLEMS]:
                console.print(f"  {report.file}:{line}: {what}", markup=False)
            if len(rows) > SHOWN_PROBLEMS:
                console.print(f"  ... and {len(rows) - SHOWN_PROBLEMS} more", markup=False)


@subscribers.command("list")
def list_command(
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only members of this list.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: subscribed, unsubscribed, bounced, complained."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (0: all).")] = 100,
    json: Json = False,
) -> None:
    """List subscribers as a table."""
    if json:
        found = _store().subscribers(list_name, status=status)
        print_json([sub for n, sub in enumerate(found) if not limit or n < limit])
        return
    table = Table()
    table.add_column("email", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("lists", overflow="fold")
    table.add_column("topics", overflow="fold")
    more = False
    for shown, sub in enumerate(_store().subscribers(list_name, status=status)):
        if limit and shown >= limit:
            more = True
            break
        table.add_row(
            Text(sub.email),
            Text(sub.name),
            _status(sub),
            Text(", ".join(sorted(sub.lists))),
            Text(", ".join(sorted(sub.topics))),
        )
    console.print(table)
    if more:
        console.print(f"(first {limit} shown; --limit 0 shows all)", markup=False)


def _status(sub: Subscriber) -> Text:
    if sub.mailable:
        return Text("subscribed", style="green")
    return Text(
        sub.status if sub.status != "subscribed" else f"suppressed ({sub.suppressed})", style="red"
    )


@subscribers.command("show")
def show_command(email: Annotated[str, typer.Argument(help="The subscriber's address.")]) -> None:
    """Everything stored about one subscriber, and their history."""
    from campaign.signup.consent import consent_records

    store = _store()
    sub = store.find(email)
    if sub is None:
        raise UserError(f"no subscriber with address {email!r}")
    table = Table("field", "value", show_header=False)
    for key, value in [
        ("email", sub.email),
        ("public id", sub.public_id),
        ("name", sub.name),
        ("first name", sub.first_name),
        ("last name", sub.last_name),
        *sorted(sub.fields.items()),
        ("lists", ", ".join(sorted(sub.lists))),
        ("left lists", ", ".join(sorted(sub.unsubscribed_lists))),
        ("topics", ", ".join(sorted(sub.topics))),
        (
            "consent",
            f"{sub.consent_source or ''} {sub.consent_at.isoformat() if sub.consent_at else ''}".strip(),
        ),
        ("soft bounces", str(sub.soft_bounces)),
        ("created", sub.created_at.isoformat()),
        ("updated", sub.updated_at.isoformat()),
    ]:
        table.add_row(Text(key), Text(value))
    table.add_row(Text("status"), _status(sub))
    console.print(table)
    history = Table("when", "what", "source", "detail", title="history")
    for event in store.history(sub.email):
        history.add_row(
            event["created_at"].isoformat(timespec="seconds"),
            Text(event["kind"]),
            Text(event["source"]),
            Text(event["detail"]),
        )
    console.print(history)
    given = Table("when", "list", "how", "words shown", "IP (keyed hash)", title="consent")
    for consent in consent_records(store.engine, sub.email):
        given.add_row(
            consent.at.isoformat(timespec="seconds"),
            Text(consent.list_name),
            consent.method,
            Text(consent.text),
            (consent.ip_hash or "")[:16],
        )
    console.print(given)


@subscribers.command("export")
def export_command(
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only members of this list.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of standard output.")
    ] = None,
    consents: Annotated[
        bool, typer.Option("--consents", help="Write the consent records instead, one per row.")
    ] = False,
) -> None:
    """Write subscribers as CSV (readable by `subscribers import`), or their consent records."""
    from campaign.audience.export import export_csv
    from campaign.signup.consent import export_consents

    store = _store()

    def write(handle: TextIO) -> int:
        if consents:
            return export_consents(store.engine, handle, list_name)
        return export_csv(store, handle, list_name)

    if out is None:
        write(sys.stdout)
        return
    try:
        with out.open("w", encoding="utf-8", newline="") as handle:
            written = write(handle)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    kind = "consent records" if consents else "subscribers"
    console.print(f"{written} {kind} written to {out}", markup=False)


@subscribers.command("unsubscribe")
def unsubscribe_command(
    email: Annotated[
        str, typer.Argument(help="The address (blocked even if it is not a subscriber).")
    ],
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only from this list (default: from everything).")
    ] = None,
) -> None:
    """Stop sending to an address: from one list, or from everything for good."""
    store = _store()
    known = store.find(email) is not None
    store.unsubscribe(email, source="cli", list_name=list_name)
    where = f"list {list_name!r}" if list_name else "everything"
    note = "" if known else " (not a subscriber; the address is blocked from now on)"
    console.print(f"{email} unsubscribed from {where}{note}", markup=False)


@subscribers.command("delete")
def delete_command(
    email: Annotated[str, typer.Argument(help="The address whose data to erase.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a subscriber's personal data; the address stays blocked (as a hash)."""
    if not yes and not typer.confirm(f"Erase everything stored about {email}?"):
        raise typer.Exit(1)
    config = get_config()
    # Without a signing key nothing was sent, so the ledger has nothing to key.
    secret = config.env.get(SECRET_KEY_ENV, "").strip()
    if Store.open(config).delete(email, source="cli", secret=secret):
        console.print(
            f"{email} erased; only a hash of the address is kept, so it stays blocked", markup=False
        )
    else:
        console.print(
            f"{email}: no subscriber has this address, nothing to erase; it is blocked from now on",
            markup=False,
        )


@app.command("lists")
def lists_command(
    add: Annotated[str | None, typer.Option("--add", help="Create this list.")] = None,
    json: Json = False,
) -> None:
    """Lists, with how many subscribers a send to each would reach."""
    store = _store()
    if add:
        store.ensure_list(add)
    _print_counts("list", store.lists(), json=json)


@app.command("topics")
def topics_command(
    add: Annotated[str | None, typer.Option("--add", help="Create this topic.")] = None,
    json: Json = False,
) -> None:
    """Topics (offered on the preferences page), with how many subscribers chose each."""
    store = _store()
    if add:
        store.ensure_topic(add)
    _print_counts("topic", store.topics(), json=json)


def _print_counts(kind: str, rows: list[tuple[str, int]], *, json: bool) -> None:
    if json:
        print_json([{"name": name, "mailable": count} for name, count in rows])
        return
    table = Table(kind, "mailable subscribers")
    for name, count in rows:
        table.add_row(Text(name), str(count))
    console.print(table)
