"""`campaign subscribers import`: a spreadsheet's CSV export into a list, in one transaction.

The file is read and checked whole before anything is written, so a file refused as
a whole (no email column, bytes that are not UTF-8) leaves the database untouched.
A bad row never stops the import: it is reported with its CSV line number and the
rest goes in. An import never brings back someone who unsubscribed, bounced or
complained, unless the user says why (`resubscribe_reason`, logged as an event).
Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import Connection, bindparam, delete, exists, insert, literal, select, update

from campaign.audience.models import CORE_FIELDS, checked_email, email_hash, one_line
from campaign.audience.store import Store, chunked, lst, m, new_subscriber, s, sup, tc, top
from campaign.audience.tables import UTCDateTime, events, utcnow
from campaign.errors import ImportFileError, Location

EMAIL_HEADERS = {"email", "email_address", "e_mail", "e_mail_address", "mail", "emailaddress"}
FIRST_NAME_HEADERS = {"first_name", "firstname", "first", "given_name", "fname"}
LAST_NAME_HEADERS = {"last_name", "lastname", "last", "surname", "family_name", "lname"}
NAME_HEADERS = {"name", "full_name", "fullname", "display_name"}
SKIPPED_HEADERS = {
    "status",
    "lists",
    "topics",
    "consent_source",
    "consent_at",
    "created_at",
    "updated_at",
}
"""Columns `subscribers export` adds about our own state; an import ignores them rather
than turning them into merge fields (status comes from the store, never from a file)."""

DELIMITERS = ",;\t"
BATCH = 1000
"""Rows per batch: one `IN (...)` lookup of what exists, then one statement per table."""


@dataclass
class ImportReport:
    """What an import did. Line numbers are the file's own (line 1 is the header)."""

    file: Path
    list_name: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    """(line, reason) of each row not imported because it is broken."""
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    """(line, address) of each repeat of an address seen earlier in the file (the first one counts)."""
    suppressed_skipped: list[tuple[int, str]] = field(default_factory=list)
    """(line, address) of each row skipped because that person unsubscribed, bounced or complained."""
    resubscribed: int = 0
    merge_fields: list[str] = field(default_factory=list)
    """The extra columns, as the merge-field names they became."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    email: str
    first_name: str
    last_name: str
    name: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Columns:
    """Which cell of a row holds what."""

    width: int
    email: int
    first_name: int | None
    last_name: int | None
    name: int | None
    extra: list[tuple[int, str]]


def snake_case(header: str) -> str:
    """ "Email Address" -> email_address, "Prénom" -> prenom: a valid merge-field name."""
    ascii_text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    key = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_text).strip("_").lower()
    return f"field_{key}" if key[:1].isdigit() else key


def map_columns(header: Sequence[str], path: Path, line: int) -> Columns:
    """Find the email, name and merge-field columns of a header row (names case-insensitive)."""
    found: dict[str, int] = {}
    extra: list[tuple[int, str]] = []
    taken = set(CORE_FIELDS)
    for index, cell in enumerate(header):
        key = snake_case(cell)
        for role, names in (
            ("email", EMAIL_HEADERS),
            ("first_name", FIRST_NAME_HEADERS),
            ("last_name", LAST_NAME_HEADERS),
            ("name", NAME_HEADERS),
        ):
            if key in names and role not in found:
                found[role] = index
                break
        else:
            if key in SKIPPED_HEADERS:
                continue
            key = key or f"column_{index + 1}"
            while key in taken:
                key += "_2"
            taken.add(key)
            extra.append((index, key))
    if "email" not in found:
        shown = ", ".join(repr(cell) for cell in header) or "nothing"
        raise ImportFileError(
            f"no email column (the header row has {shown}); name one 'email'", Location(path, line)
        )
    return Columns(
        len(header),
        found["email"],
        found.get("first_name"),
        found.get("last_name"),
        found.get("name"),
        extra,
    )


def decode(path: Path) -> str:
    """The file as text: UTF-8, with or without a byte-order mark; else refused naming the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror}", Location(path)) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            f'byte 0x{data[exc.start]:02x} is not UTF-8; save the file as "CSV UTF-8"',
            Location(path, line),
        ) from None


def sniff_delimiter(header_line: str) -> str:
    """Comma, semicolon (as spreadsheets export in many locales) or tab: the most frequent
    outside quotes in the header line."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse(path: Path, report: ImportReport) -> list[Row]:
    """The file's valid rows, first occurrence of each address; broken rows go into `report`."""
    text = decode(path)
    delimiter = sniff_delimiter(text.lstrip("\r\n").split("\n", 1)[0])
    records = _records(text, delimiter, path)
    header_line, header = next(
        ((line, cells) for line, cells in records if any(c.strip() for c in cells)), (1, [])
    )
    if not header:
        raise ImportFileError("the file is empty", Location(path))
    columns = map_columns(header, path, header_line)
    report.merge_fields = [key for _, key in columns.extra]
    rows: dict[str, Row] = {}
    for line, cells in records:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > columns.width and any(cell.strip() for cell in cells[columns.width :]):
            report.invalid.append(
                (
                    line,
                    f"{len(cells)} values but the header has {columns.width} (a value holding {delimiter!r} needs quotes)",
                )
            )
            continue
        row = _row(line, cells, columns, report)
        if row is None:
            continue
        if row.email in rows:
            report.duplicates.append((line, row.email))
        else:
            rows[row.email] = row
    return list(rows.values())


def _records(text: str, delimiter: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each CSV record; a record may span lines (quoted line breaks).

    A quote opened and never closed would silently swallow every row after it, so the
    file is refused, naming the line where that quote opened.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = start = 1
    try:
        for cells in reader:
            start = line
            yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(
            f"not readable as CSV: {exc}", Location(path, reader.line_num)
        ) from None
    if reader.line_num > start and _unclosed_quote(text, start, delimiter):
        raise ImportFileError(
            'a quoted value opens here and is never closed (a missing " in the file)',
            Location(path, start),
        )


def _unclosed_quote(text: str, line: int, delimiter: str) -> bool:
    """Whether the text from `line` to the end ends inside a quoted value."""
    tail = "".join(io.StringIO(text, newline="").readlines()[line - 1 :])
    try:
        list(csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _row(line: int, cells: list[str], columns: Columns, report: ImportReport) -> Row | None:
    def cell(index: int | None) -> str:
        return cells[index].strip() if index is not None and index < len(cells) else ""

    raw = cell(columns.email)
    if not raw:
        report.invalid.append((line, "no email address"))
        return None
    try:
        email = checked_email(raw)
    except EmailNotValidError as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        report.invalid.append((line, f"{shown!r}: {exc}"))
        return None
    fields = {
        key: value.replace("\r\n", "\n") for index, key in columns.extra if (value := cell(index))
    }
    return Row(
        line,
        email,
        one_line(cell(columns.first_name)),
        one_line(cell(columns.last_name)),
        one_line(cell(columns.name)),
        fields,
    )


def import_csv(
    store: Store,
    path: Path,
    list_name: str,
    topics: Sequence[str] = (),
    resubscribe_reason: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import `path` into `list_name` (created if new), choosing `topics` for everyone in it.

    With `resubscribe_reason`, people who unsubscribed, bounced, complained or were
    suppressed are brought back, each with an event giving the reason; without it, they
    are skipped and listed in the report. `progress(rows written, rows)` follows each batch.
    """
    path = Path(path)
    report = ImportReport(file=path, list_name=list_name)
    rows = parse(path, report)
    if resubscribe_reason is not None and not resubscribe_reason.strip():
        raise ImportFileError(
            "--resubscribe needs a reason (--reason TEXT), which is logged", Location(path)
        )
    with store.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Every lookup here is by a unique index, but PostgreSQL's planner answers an
            # IN list of 1,000 hashes with a scan of the whole (growing) table: 2x slower.
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        if connection.dialect.name == "sqlite":
            # Unique indexes on random keys (public id, hash) thrash SQLite's default 2 MB page cache.
            connection.exec_driver_sql("PRAGMA cache_size=-65536")
        _Writer(connection, path, list_name, topics, resubscribe_reason, report).write(
            rows, progress
        )
        if connection.dialect.name == "postgresql" and report.added:
            # Fresh statistics, so the planner walks the keyset indexes when a send streams.
            connection.exec_driver_sql("ANALYZE subscribers, list_members, topic_choices")
    return report


class _Writer:
    """Writes parsed rows in batches: one query per batch to read what exists, executemany to write."""

    def __init__(
        self,
        connection: Connection,
        path: Path,
        list_name: str,
        topics: Sequence[str],
        reason: str | None,
        report: ImportReport,
    ) -> None:
        self.connection = connection
        self.reason = reason.strip() if reason else None
        self.report = report
        self.source = f"import {path.name}"
        self.list_name = list_name.strip()
        self.list_id = Store._ensure(connection, lst, [list_name])[self.list_name]
        self.topic_ids = list(Store._ensure(connection, top, topics).values()) if topics else []

    def write(self, rows: list[Row], progress: Callable[[int, int], None] | None) -> None:
        done = 0
        for batch in chunked(rows, BATCH):
            self._batch(batch)
            done += len(batch)
            if progress is not None:
                progress(done, len(rows))

    def _batch(self, rows: Sequence[Row]) -> None:
        c = self.connection
        now = utcnow()
        hashes = [email_hash(row.email) for row in rows]
        existing = {
            r.email_hash: r for r in c.execute(select(s).where(s.c.email_hash.in_(hashes))).all()
        }
        blocked = dict(
            c.execute(
                select(sup.c.email_hash, sup.c.reason).where(sup.c.email_hash.in_(hashes))
            ).all()
        )
        ids = [r.id for r in existing.values()]
        member = dict(
            c.execute(
                select(m.c.subscriber_id, m.c.status).where(
                    m.c.list_id == self.list_id, m.c.subscriber_id.in_(ids)
                )
            ).all()
        )
        chosen = (
            set(
                c.execute(
                    select(tc.c.subscriber_id, tc.c.topic_id).where(tc.c.subscriber_id.in_(ids))
                ).all()
            )
            if self.topic_ids
            else set()
        )

        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        unblocked: list[str] = []  # people brought back by --resubscribe
        join: list[str] = []  # to become active members of the list
        choose: list[str] = []  # to get the import's topics
        for row, hashed in zip(rows, hashes, strict=True):
            old = existing.get(hashed)
            refused = hashed in blocked or (
                old is not None
                and (old.status != "subscribed" or member.get(old.id) == "unsubscribed")
            )
            if refused and self.reason is None:
                self.report.suppressed_skipped.append((row.line, row.email))
                continue
            if refused:
                self.report.resubscribed += 1
                unblocked.append(hashed)
            if old is None:
                new.append(
                    new_subscriber(
                        row.email,
                        hashed,
                        row.name,
                        row.first_name,
                        row.last_name,
                        row.fields,
                        self.source,
                        now,
                    )
                )
                join.append(hashed)
                choose.append(hashed)
                continue
            values = self._changes(old, row)
            if values:
                changed.append({"_id": old.id, **values, "updated_at": now})
            joins = member.get(old.id) != "active"
            if joins:
                join.append(hashed)
            chooses = any((old.id, topic_id) not in chosen for topic_id in self.topic_ids)
            if chooses:
                choose.append(hashed)
            if values or refused or joins or chooses:
                self.report.updated += 1
            else:
                self.report.unchanged += 1

        # Plain executemany for the rows themselves (RETURNING would insert row by row on
        # SQLite); memberships, topic choices and events are INSERT ... SELECT per batch.
        when = bindparam("now", now, type_=UTCDateTime())
        if new:
            c.execute(insert(s), new)
            self.report.added += len(new)
            self._log(c, [row["email_hash"] for row in new], "subscribed", self.list_name, when)
        if changed:
            c.execute(update(s).where(s.c.id == bindparam("_id")), changed)
        if unblocked:
            c.execute(delete(sup).where(sup.c.email_hash.in_(unblocked)))
            c.execute(
                update(s)
                .where(s.c.email_hash.in_(unblocked))
                .values(
                    status="subscribed",
                    consent_source=self.source,
                    consent_at=now,
                    soft_bounces=0,
                    updated_at=now,
                )
            )
            c.execute(
                update(m)
                .where(m.c.list_id == self.list_id, m.c.status != "active")
                .where(m.c.subscriber_id.in_(select(s.c.id).where(s.c.email_hash.in_(unblocked))))
                .values(status="active", added_at=now)
            )
            self._log(c, unblocked, "resubscribed", f"{self.list_name}: {self.reason}", when)
        if join:
            c.execute(
                insert(m).from_select(
                    ["list_id", "subscriber_id", "status", "added_at"],
                    select(literal(self.list_id), s.c.id, literal("active"), when).where(
                        s.c.email_hash.in_(join),
                        ~exists().where(m.c.list_id == self.list_id, m.c.subscriber_id == s.c.id),
                    ),
                )
            )
        for topic_id in self.topic_ids if choose else ():
            c.execute(
                insert(tc).from_select(
                    ["subscriber_id", "topic_id", "chosen_at"],
                    select(s.c.id, literal(topic_id), when).where(
                        s.c.email_hash.in_(choose),
                        ~exists().where(tc.c.topic_id == topic_id, tc.c.subscriber_id == s.c.id),
                    ),
                )
            )

    def _log(
        self, connection: Connection, hashes: list[str], kind: str, detail: str, when: Any
    ) -> None:
        """One event per subscriber among `hashes`, in one INSERT ... SELECT."""
        connection.execute(
            insert(events).from_select(
                ["subscriber_id", "email_hash", "kind", "detail", "source", "created_at"],
                select(
                    s.c.id,
                    s.c.email_hash,
                    literal(kind),
                    literal(detail),
                    literal(self.source),
                    when,
                ).where(s.c.email_hash.in_(hashes)),
            )
        )

    @staticmethod
    def _changes(old: Any, row: Row) -> dict[str, Any]:
        """What the row changes: non-empty cells win, empty cells keep what is stored."""
        first = row.first_name or old.first_name
        last = row.last_name or old.last_name
        derived = old.name == one_line(f"{old.first_name} {old.last_name}")
        name = row.name or (one_line(f"{first} {last}") if derived else old.name)
        fields = {**(old.fields or {}), **row.fields}
        values = {"first_name": first, "last_name": last, "name": name, "fields": fields}
        current = {
            "first_name": old.first_name,
            "last_name": old.last_name,
            "name": old.name,
            "fields": old.fields or {},
        }
        return values if values != current else {}
