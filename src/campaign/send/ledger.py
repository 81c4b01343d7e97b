"""The send ledger: one row per (campaign, recipient), so each is mailed exactly once.

    pending ──claim──> sending ──reply──> sent | failed | pending (retry later)
                          └── lease ran out mid-request ──> unknown ──webhook──> sent
                                                      (resent only on request)

A row is marked `sending` and committed before the provider is called, so a crash
can never make us send it twice without knowing: such rows become `unknown`.
Claims are atomic: PostgreSQL locks the chosen rows with FOR UPDATE SKIP LOCKED
(several hosts share one send), SQLite serialises claimers with BEGIN IMMEDIATE.
Each row carries our own id (`send_id`), sent along in a header and in metadata,
so a webhook or a provider's log points back at it.

This module is the ledger's face: the sends (open, queue, finish, summarise), with the
rest re-exported from where it lives: the tables (`campaign.send.tables`), a sender's
claims (`campaign.send.claims`), and events after the fact (`campaign.send.events`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    Table,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from campaign.audience.tables import utcnow
from campaign.compiled import Compiled
from campaign.db import insert_ignoring
from campaign.errors import UserError
from campaign.send.claims import (
    Outcome,
    Queued,
    claim,
    next_retry_at,
    prepare,
    record,
    release,
    settle,
)
from campaign.send.events import RESOLVABLE, erase, record_event
from campaign.send.tables import (
    DELIVERY_STATUSES,
    SEND_STATUSES,
    d,
    deliveries,
    new_send_id,
    new_worker_id,
    sends,
    write,
)

__all__ = [
    "DELIVERY_STATUSES",
    "RESOLVABLE",
    "SEND_STATUSES",
    "Outcome",
    "Queued",
    "SendInfo",
    "Summary",
    "claim",
    "deliveries",
    "enqueue",
    "erase",
    "finish_if_done",
    "get_send",
    "new_send_id",
    "new_worker_id",
    "next_retry_at",
    "open_send",
    "prepare",
    "record",
    "record_event",
    "release",
    "sends",
    "sent_campaigns",
    "set_status",
    "settle",
    "summary",
    "write",
]


@dataclass(frozen=True, slots=True)
class SendInfo:
    """One campaign's send, with the content frozen when it began."""

    id: int
    campaign: str
    list_name: str
    topics: tuple[str, ...]
    compiled: Compiled
    status: str
    note: str
    enqueued_through: int
    enqueued: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    segment: str | None = None
    """The condition the recipients were chosen by (`--where`, `--segment`); None: everyone."""


@dataclass
class Summary:
    """The ledger's counts for one send (`campaign status`)."""

    campaign: str
    status: str
    note: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)
    unknown_reasons: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def sent(self) -> int:
        return self.count("sent")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def unknown(self) -> int:
        return self.count("unknown")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def bounced(self) -> int:
        """Refused for good by the recipient's server while sending (and suppressed): in the
        ledger these are failed with the event "bounced"; `failed` leaves them out."""
        return self.count("bounced")

    @property
    def pending(self) -> int:
        return self.count("pending") + self.count("sending")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """Finished with nothing failed and nothing unknown."""
        return (
            self.status == "finished"
            and not self.counts.get("failed")
            and not self.counts.get("unknown")
        )


def _info(row: Any) -> SendInfo:
    return SendInfo(
        id=row.id,
        campaign=row.campaign,
        list_name=row.list_name,
        topics=tuple(row.topics or ()),
        compiled=Compiled.model_validate_json(row.compiled),
        segment=row.segment,
        status=row.status,
        note=row.note,
        enqueued_through=row.enqueued_through,
        enqueued=bool(row.enqueued),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _insert_ignore(
    connection: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    connection.execute(insert_ignoring(connection, table, keys), rows)


def get_send(engine: Engine, campaign: str) -> SendInfo | None:
    """The send of `campaign` (slug), with its frozen Compiled; None if never sent."""
    with engine.connect() as connection:
        row = connection.execute(select(sends).where(sends.c.campaign == campaign)).first()
    return _info(row) if row else None


def sent_campaigns(engine: Engine) -> list[SendInfo]:
    """Every campaign whose send has begun, newest first: what the archive shows."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(sends).where(sends.c.started_at.is_not(None)).order_by(sends.c.started_at.desc())
        ).all()
    return [_info(row) for row in rows]


def open_send(
    engine: Engine,
    compiled: Compiled,
    list_name: str,
    topics: Sequence[str],
    segment: str | None = None,
) -> SendInfo:
    """Begin the send of `compiled`, or resume it: a campaign has one send, whose content and
    audience are fixed by its first run. Sending it to another list is refused."""
    now = utcnow()
    with write(engine) as connection:
        _insert_ignore(
            connection,
            sends,
            [
                {
                    "campaign": compiled.slug,
                    "list_name": list_name,
                    "topics": sorted(topics),
                    "segment": segment,
                    "compiled": compiled.model_dump_json(),
                    "status": "running",
                    "note": "",
                    "enqueued_through": 0,
                    "enqueued": False,
                    "created_at": now,
                }
            ],
            ["campaign"],
        )
        row = connection.execute(select(sends).where(sends.c.campaign == compiled.slug)).one()
        if (
            row.list_name != list_name
            or sorted(row.topics or ()) != sorted(topics)
            or row.segment != segment
        ):
            wanted = f"list {list_name!r}" + (
                f" (topics {', '.join(sorted(topics))})" if topics else ""
            )
            had = f"list {row.list_name!r}" + (
                f" (topics {', '.join(row.topics)})" if row.topics else ""
            )
            wanted += f" where {segment}" if segment else ""
            had += f" where {row.segment}" if row.segment else ""
            raise UserError(
                f"campaign {compiled.slug!r} was already sent to {had}; it cannot also go to {wanted}. "
                "Copy the campaign to a new folder to send it again."
            )
        connection.execute(
            update(sends)
            .where(sends.c.id == row.id)
            .values(status="running", note="", started_at=func.coalesce(sends.c.started_at, now))
        )
        row = connection.execute(select(sends).where(sends.c.id == row.id)).one()
    return _info(row)


def enqueue(
    engine: Engine,
    send: SendInfo,
    recipients: Select[Any],
    *,
    chunk: int = 100_000,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Add a pending row per recipient, set-based: `recipients` (the audience's SELECT of
    mailable members, with `id` and `email` columns) feeds INSERT ... SELECT statements of
    `chunk` rows each, in id order. Each chunk commits with how far it got, so a resumed send
    continues from there; rows already present are left alone. Returns the rows added;
    `on_chunk` is told how many each committed chunk added (progress on a long queue).

    The row's merge fields are not copied: a claim reads them from the subscriber."""
    ids = recipients.selected_columns.id
    added, through = 0, send.enqueued_through
    while True:
        with write(engine) as connection:
            page = recipients.where(ids > through).order_by(ids).limit(chunk).subquery()
            count, last = connection.execute(select(func.count(), func.max(page.c.id))).one()
            if count:
                rows = recipients.with_only_columns(
                    _random_id(connection),
                    literal(send.id),
                    ids,
                    recipients.selected_columns.email,
                    literal_column("'{}'"),
                    literal("pending"),
                    literal(0),
                    literal(""),
                    literal(utcnow(), d.c.updated_at.type),
                ).where(ids > through, ids <= last)
                rowcount = connection.execute(
                    insert_ignoring(connection, deliveries, ["send", "subscriber_id"]).from_select(
                        _ENQUEUED, rows
                    ),
                    execution_options={"preserve_rowcount": True},
                ).rowcount
                added += rowcount
                through = last
            connection.execute(
                update(sends)
                .where(sends.c.id == send.id)
                .values(enqueued_through=through, enqueued=not count)
            )
        if not count:
            return added
        if on_chunk is not None:
            on_chunk(rowcount)


_ENQUEUED = [
    "send_id",
    "send",
    "subscriber_id",
    "email",
    "recipient",
    "status",
    "attempts",
    "reason",
    "updated_at",
]


def _random_id(connection: Connection) -> Any:
    """A new send id (32 hex digits, like `new_send_id`) made by the database, per row."""
    if connection.dialect.name == "postgresql":
        return func.replace(func.gen_random_uuid().cast(String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def set_status(engine: Engine, send: int, status: str, note: str = "") -> None:
    """Pause or fail a send (any engine working on it stops claiming)."""
    with write(engine) as connection:
        connection.execute(update(sends).where(sends.c.id == send).values(status=status, note=note))


def finish_if_done(engine: Engine, send: int) -> bool:
    """Mark the send finished once nothing is pending or in flight."""
    with write(engine) as connection:
        busy = connection.execute(
            select(func.count()).where(d.c.send == send, d.c.status.in_(("pending", "sending")))
        ).scalar_one()
        if busy:
            return False
        connection.execute(
            update(sends)
            .where(sends.c.id == send, sends.c.status == "running")
            .values(status="finished", finished_at=utcnow())
        )
    return True


def summary(engine: Engine, campaign: str) -> Summary | None:
    """Counts by status, and failed and unknown rows by reason; None if the campaign was never sent."""
    with engine.connect() as connection:
        row = connection.execute(
            select(sends.c.id, sends.c.status, sends.c.note).where(sends.c.campaign == campaign)
        ).first()
        if row is None:
            return None
        counts: dict[str, int] = dict(
            connection.execute(
                select(d.c.status, func.count()).where(d.c.send == row.id).group_by(d.c.status)
            ).all()
        )
        # Failed because the recipient's server refused them for good: counted as bounced.
        bounced = and_(d.c.status == "failed", d.c.event == "bounced")
        not_bounced = or_(d.c.status != "failed", d.c.event.is_(None), d.c.event != "bounced")
        if counts.get("failed") and (
            refused := connection.execute(
                select(func.count()).where(d.c.send == row.id, bounced)
            ).scalar_one()
        ):
            counts["bounced"] = refused
            counts["failed"] -= refused
        reasons: dict[str, dict[str, int]] = {}
        for status in ("failed", "unknown"):
            reasons[status] = dict(
                connection.execute(
                    select(d.c.reason, func.count())
                    .where(d.c.send == row.id, d.c.status == status, not_bounced)
                    .group_by(d.c.reason)
                    .order_by(func.count().desc())
                    .limit(20)
                ).all()
            )
    return Summary(
        campaign=campaign,
        status=row.status,
        note=row.note,
        counts={k: int(v) for k, v in counts.items()},
        failed_reasons=reasons["failed"],
        unknown_reasons=reasons["unknown"],
    )
