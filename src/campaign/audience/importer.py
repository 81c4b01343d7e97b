"""`campaign subscribers import`: a spreadsheet's CSV export into a list, in short chunks.

The file is read and checked whole before anything is written, so a file refused as
a whole (no email column, bytes that are not UTF-8, repeated column names) leaves the
database untouched. Rows go in one chunk (one transaction) at a time, with a checkpoint,
so a rerun of an interrupted import continues where it stopped.
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

import charset_normalizer
from sqlalchemy import Connection, bindparam, exists, insert, literal, select, update

from campaign.audience import progress
from campaign.audience.addresses import InvalidAddress, needs_smtputf8
from campaign.audience.models import CORE_FIELDS, checked_email, email_hash, one_line, overlong
from campaign.audience.queries import chunked, ensure_names, new_subscriber
from campaign.audience.store import Store
from campaign.audience.suppression import lift
from campaign.audience.tables import UTCDateTime, events, lists, utcnow
from campaign.audience.tables import list_members as m
from campaign.audience.tables import subscribers as s
from campaign.audience.tables import suppressions as sup
from campaign.audience.tables import topic_choices as tc
from campaign.audience.tables import topics as topic_table
from campaign.errors import ImportFileError, Location
from campaign.signup.consent import record_imported

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
CHUNK = 5000
"""Rows per transaction (and checkpoint): a fraction of a second of writing, so other
writers (the web's unsubscribes) wait at most that long, yet few commits."""


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
    needs_smtputf8: list[tuple[int, str]] = field(default_factory=list)
    """(line, address) of each address imported whose part before the @ is not ASCII: only
    mail servers that support SMTPUTF8 can deliver it; other services fail that recipient."""
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
    repeated: dict[str, list[int]] = {}
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
            if key in taken:
                repeated.setdefault(key, []).append(index + 1)
                continue
            taken.add(key)
            extra.append((index, key))
    if repeated:
        shown = "; ".join(
            f"{key!r} again in column {', '.join(map(str, columns))}"
            for key, columns in list(repeated.items())[:10]
        )
        raise ImportFileError(
            f"repeated column names ({shown}): give each column its own name", Location(path, line)
        )
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


def decode(path: Path, encoding: str | None = None) -> str:
    """The file as text: UTF-8 (with or without a byte-order mark) or the given `encoding`;
    else refused naming the line, and the encoding it looks like (a cp1252 export from Excel)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror}", Location(path)) from None
    return decode_bytes(data, path, encoding)


def decode_bytes(data: bytes, path: Path, encoding: str | None = None) -> str:
    nul = data.find(b"\x00")
    if nul >= 0:
        hint = (
            " (it looks like UTF-16: save it as CSV UTF-8)"
            if data[:2] in (b"\xff\xfe", b"\xfe\xff")
            else ""
        )
        raise ImportFileError(
            f"a NUL byte, which no text file holds: is this a spreadsheet file, not CSV?{hint}",
            Location(path, data.count(b"\n", 0, nul) + 1),
        )
    if encoding is not None:
        try:
            return data.decode(encoding)
        except LookupError:
            raise ImportFileError(f"unknown encoding {encoding!r}", Location(path)) from None
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"byte 0x{data[exc.start]:02x} is not {encoding}",
                Location(path, data.count(b"\n", 0, exc.start) + 1),
            ) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        guess = excel_encoding(data[:1_000_000])
        hint = f"; it looks like {guess}: import it with --encoding {guess}" if guess else ""
        raise ImportFileError(
            f'byte 0x{data[exc.start]:02x} is not UTF-8; save the file as "CSV UTF-8"{hint}',
            Location(path, line),
        ) from None


def unquoted(cell: str) -> str:
    """A cell without the ' that `subscribers export` puts before a formula start (=, +, -, @)."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


WINDOWS_CODE_PAGES = ["cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "cp932", "cp936"]
"""What Excel writes a plain "CSV" in: the system's Windows code page (cp1252 in the West)."""


def excel_encoding(data: bytes) -> str | None:
    """The Windows code page `data` most likely is in (charset-normalizer's guess); cp1252
    whenever it reads the bytes the same, as the commonest."""
    best = charset_normalizer.from_bytes(data, cp_isolation=WINDOWS_CODE_PAGES).best()
    if best is None:
        return None
    try:
        if data.decode("cp1252") == data.decode(best.encoding):
            return "cp1252"
    except UnicodeDecodeError:
        pass
    return str(best.encoding)


def sniff_delimiter(header_line: str) -> str:
    """Comma, semicolon (as spreadsheets export in many locales) or tab: the most frequent
    outside quotes in the header line."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse(path: Path, report: ImportReport, encoding: str | None = None) -> list[Row]:
    """The file's valid rows, first occurrence of each address; broken rows go into `report`."""
    text = decode(path, encoding)
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
        return unquoted(cells[index].strip()) if index is not None and index < len(cells) else ""

    raw = cell(columns.email)
    if not raw:
        report.invalid.append((line, "no email address"))
        return None
    try:
        email = checked_email(raw)
    except InvalidAddress as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        report.invalid.append((line, f"{shown!r}: {exc}"))
        return None
    if needs_smtputf8(email):
        report.needs_smtputf8.append((line, email))
    fields = {
        key: value.replace("\r\n", "\n") for index, key in columns.extra if (value := cell(index))
    }
    first, last, name = (
        one_line(cell(i)) for i in (columns.first_name, columns.last_name, columns.name)
    )
    if problem := overlong({"first_name": first, "last_name": last, "name": name}, fields):
        report.invalid.append((line, problem))
        return None
    return Row(line, email, first, last, name, fields)


def import_csv(
    store: Store,
    path: Path,
    list_name: str,
    topics: Sequence[str] = (),
    resubscribe_reason: str | None = None,
    encoding: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import `path` into `list_name` (created if new), choosing `topics` for everyone in it.

    With `resubscribe_reason`, people who unsubscribed, bounced, complained or were
    suppressed are brought back, each with an event giving the reason; without it, they
    are skipped and listed in the report.

    Rows are written in chunks of `CHUNK`, one short transaction each, so the web's
    unsubscribes never wait behind the whole import; each chunk commits with a checkpoint,
    so a rerun of an interrupted import continues after the last chunk, its report whole.
    `on_progress(rows done, rows)` follows each chunk.
    """
    path = Path(path)
    report = ImportReport(file=path, list_name=list_name)
    rows = parse(path, report, encoding)
    if resubscribe_reason is not None and not resubscribe_reason.strip():
        raise ImportFileError(
            "--resubscribe needs a reason (--reason TEXT), which is logged", Location(path)
        )
    options = [list_name, sorted(topics), resubscribe_reason, encoding]
    key = progress.import_key(path.read_bytes(), options)
    with store.engine.connect() as connection:
        done = progress.load(connection, key)
    _resume(report, done, rows)
    # An empty file still creates its list (and topics): one empty chunk.
    for batch in list(chunked(rows[done.rows_done :], CHUNK)) or [[]]:
        with store.engine.begin() as connection:
            _tune(connection)
            writer = _Writer(connection, path, list_name, topics, resubscribe_reason, report)
            writer.write(list(batch))
            done.rows_done += len(batch)
            _checkpoint(report, done)
            progress.save(connection, done)
        if on_progress is not None:
            on_progress(done.rows_done, len(rows))
    with store.engine.begin() as connection:
        progress.clear(connection, key)
        if connection.dialect.name == "postgresql" and report.added:
            # Fresh statistics, so the planner walks the keyset indexes when a send streams.
            connection.exec_driver_sql("ANALYZE subscribers, list_members, topic_choices")
    return report


def _tune(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Every lookup here is by a unique index, but PostgreSQL's planner answers an
        # IN list of 1,000 hashes with a scan of the whole (growing) table: 2x slower.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    if connection.dialect.name == "sqlite":
        # Unique indexes on random keys (public id, hash) thrash SQLite's default 2 MB page cache.
        connection.exec_driver_sql("PRAGMA cache_size=-65536")


def _resume(report: ImportReport, done: progress.Progress, rows: list[Row]) -> None:
    """Start `report` from what the committed chunks of an interrupted run did."""
    report.added, report.updated, report.unchanged = done.added, done.updated, done.unchanged
    report.resubscribed = done.resubscribed
    address = {row.line: row.email for row in rows[: done.rows_done]}
    report.suppressed_skipped = [(line, address[line]) for line in done.skipped_lines]


def _checkpoint(report: ImportReport, done: progress.Progress) -> None:
    done.added, done.updated, done.unchanged = report.added, report.updated, report.unchanged
    done.resubscribed = report.resubscribed
    done.skipped_lines = [line for line, _ in report.suppressed_skipped]


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
        self.list_id = ensure_names(connection, lists, [list_name])[self.list_name]
        self.topic_ids = (
            list(ensure_names(connection, topic_table, topics).values()) if topics else []
        )

    def write(self, rows: list[Row]) -> None:
        for batch in chunked(rows, BATCH):
            self._batch(batch)

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
            lift(c, unblocked, source=self.source, now=now)
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
            record_imported(c, join, self.list_name, self.source, when)
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
