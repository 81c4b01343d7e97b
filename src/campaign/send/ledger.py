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
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from campaign.audience.models import display_name, merge_fields
from campaign.audience.tables import UTCDateTime, subscribers, utcnow
from campaign.compiled import Compiled
from campaign.db import insert_ignoring, metadata
from campaign.errors import UserError
from campaign.send import lease

SEND_STATUSES = ("running", "paused", "finished", "failed")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "unknown", "skipped")

sends = Table(
    "sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(200), nullable=False),
    Column("list_name", String(200), nullable=False),
    Column("topics", JSON, nullable=False),
    Column("segment", Text, doc="the --where/--segment condition; none: the whole list"),
    Column("compiled", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("enqueued_through", Integer, nullable=False, default=0),
    Column("enqueued", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("campaign", name="uq_sends_campaign"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("send_id", String(32), primary_key=True),
    Column("send", Integer, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("recipient", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("provider_id", String(255)),
    Column("reason", Text, nullable=False, default=""),
    Column("retry_at", UTCDateTime),
    Column("claimed_by", String(200)),
    Column("claimed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("event", String(32)),
    Column("event_detail", Text),
    Column("event_at", UTCDateTime),
    Column("resolved_by", String(64)),
    UniqueConstraint("send", "subscriber_id", name="uq_deliveries_send_subscriber"),
    Index("ix_deliveries_send_status", "send", "status", "subscriber_id"),
    Index("ix_deliveries_provider_id", "provider_id"),
)

d = deliveries


def new_worker_id() -> str:
    """host:pid:nonce: unique, and it tells a person where a claim came from. Whether that
    worker is alive is judged by its lease (`campaign.send.lease`), never by the pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def new_send_id() -> str:
    return uuid.uuid4().hex


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


@dataclass(frozen=True, slots=True)
class Queued:
    """A claimed delivery: everything needed to personalise its message (a Recipient)."""

    send_id: str
    id: int
    email: str
    public_id: str
    name: str
    fields: Mapping[str, str]
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the engine learnt about one delivery from the provider's reply."""

    send_id: str
    status: str
    provider_id: str | None = None
    reason: str = ""
    retry_at: datetime | None = None


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


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE), so
    claimers in other processes wait their turn instead of both reading the same rows."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


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
    engine: Engine, send: SendInfo, recipients: Select[Any], *, chunk: int = 100_000
) -> int:
    """Add a pending row per recipient, set-based: `recipients` (the audience's SELECT of
    mailable members, with `id` and `email` columns) feeds INSERT ... SELECT statements of
    `chunk` rows each, in id order. Each chunk commits with how far it got, so a resumed send
    continues from there; rows already present are left alone. Returns the rows added.

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
                added += connection.execute(
                    insert_ignoring(connection, deliveries, ["send", "subscriber_id"]).from_select(
                        _ENQUEUED, rows
                    ),
                    execution_options={"preserve_rowcount": True},
                ).rowcount
                through = last
            connection.execute(
                update(sends)
                .where(sends.c.id == send.id)
                .values(enqueued_through=through, enqueued=not count)
            )
        if not count:
            return added


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


def prepare(
    engine: Engine,
    send: int,
    *,
    resend_unknown: bool = False,
) -> int:
    """Before (re)starting a send: rows left `sending` by a worker whose lease ran out become
    `unknown`; failures that were retryable get a fresh set of attempts; with `resend_unknown`,
    unknown rows are queued again. Returns the rows made unknown."""
    now = utcnow()
    with write(engine) as connection:
        workers = (
            connection.execute(
                select(d.c.claimed_by).where(d.c.send == send, d.c.status == "sending").distinct()
            )
            .scalars()
            .all()
        )
        alive = lease.live(connection, workers, now)
        dead = [w for w in workers if w not in alive]
        made_unknown = 0
        if dead:
            made_unknown = connection.execute(
                update(d)
                .where(
                    d.c.send == send,
                    d.c.status == "sending",
                    or_(d.c.claimed_by.in_([w for w in dead if w]), d.c.claimed_by.is_(None)),
                )
                .values(
                    status="unknown",
                    reason="interrupted mid-request: the outcome is unknown",
                    updated_at=now,
                )
            ).rowcount
        connection.execute(
            update(d)
            .where(d.c.send == send, d.c.status == "failed", d.c.retry_at.is_not(None))
            .values(status="pending", attempts=0, retry_at=None, updated_at=now)
        )
        if resend_unknown:
            connection.execute(
                update(d)
                .where(d.c.send == send, d.c.status == "unknown")
                .values(status="pending", retry_at=None, updated_at=now)
            )
    return made_unknown


def claim(
    engine: Engine,
    send: int,
    *,
    worker: str,
    limit: int,
    mailable: Callable[[list[int]], set[int]] | None = None,
) -> list[Queued] | None:
    """Take up to `limit` due pending rows for `worker` and mark them `sending`, atomically.

    Recipients no longer mailable (unsubscribed, bounced since the send began) are marked
    `skipped` in the same transaction. None when the send is no longer running (paused or
    failed by another engine): stop claiming.
    """
    now = utcnow()
    with write(engine) as connection:
        status = connection.execute(select(sends.c.status).where(sends.c.id == send)).scalar()
        if status != "running":
            return None
        query = (
            select(
                d.c.send_id,
                d.c.subscriber_id,
                d.c.email,
                d.c.attempts,
                subscribers.c.public_id,
                subscribers.c.name,
                subscribers.c.first_name,
                subscribers.c.last_name,
                subscribers.c.fields,
            )
            .select_from(d.outerjoin(subscribers, subscribers.c.id == d.c.subscriber_id))
            .where(
                d.c.send == send,
                d.c.status == "pending",
                or_(d.c.retry_at.is_(None), d.c.retry_at <= now),
            )
            .order_by(d.c.subscriber_id)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=d)
        rows = connection.execute(query).all()
        if not rows:
            return []
        lease.touch(connection, worker, now)
        # A subscriber erased since the send began has no row left: skipped like the unsubscribed.
        known = [row.subscriber_id for row in rows if row.public_id is not None]
        keep = mailable(known) if mailable else set(known)
        taken = [row for row in rows if row.subscriber_id in keep]
        skipped = [row.send_id for row in rows if row.subscriber_id not in keep]
        if taken:
            connection.execute(
                update(d)
                .where(d.c.send_id.in_([row.send_id for row in taken]))
                .values(
                    status="sending",
                    claimed_by=worker,
                    claimed_at=now,
                    updated_at=now,
                    attempts=d.c.attempts + 1,
                )
            )
        if skipped:
            connection.execute(
                update(d)
                .where(d.c.send_id.in_(skipped))
                .values(status="skipped", reason="no longer subscribed", updated_at=now)
            )
    return [
        Queued(
            send_id=row.send_id,
            id=row.subscriber_id,
            email=row.email,
            public_id=row.public_id,
            name=display_name(row.name, row.first_name, row.last_name),
            fields=dict(  # a plain dict, as the queue held it: serialisers take it
                merge_fields(row.email, row.name, row.first_name, row.last_name, row.fields or {})
            ),
            attempts=row.attempts + 1,
        )
        for row in taken
    ]


_record = (
    update(d)
    .where(
        d.c.send_id == bindparam("key"),
        d.c.claimed_by == bindparam("worker"),
        or_(d.c.status == "sending", d.c.status == "unknown"),
    )
    .values(
        status=bindparam("new_status"),
        provider_id=bindparam("provider_id"),
        reason=bindparam("reason"),
        retry_at=bindparam("retry_at"),
        updated_at=bindparam("now"),
    )
)


def record(engine: Engine, worker: str, outcomes: Sequence[Outcome]) -> None:
    """Write what the provider answered. Only rows this worker claimed are touched; a row a
    resumer already called unknown still gets the real outcome if it arrives after all."""
    if not outcomes:
        return
    now = utcnow()
    params = [
        {
            "key": o.send_id,
            "worker": worker,
            "new_status": o.status,
            "provider_id": o.provider_id,
            "reason": o.reason[:1000],
            "retry_at": o.retry_at,
            "now": now,
        }
        for o in outcomes
    ]
    with write(engine) as connection:
        connection.execute(_record, params)


def release(engine: Engine, worker: str, send_ids: Sequence[str]) -> None:
    """Put claimed rows back to pending: the provider refused the whole request, nothing went out."""
    with write(engine) as connection:
        connection.execute(
            update(d)
            .where(
                d.c.send_id.in_(list(send_ids)), d.c.claimed_by == worker, d.c.status == "sending"
            )
            .values(status="pending", attempts=d.c.attempts - 1, updated_at=utcnow())
        )


def next_retry_at(engine: Engine, send: int) -> datetime | None:
    """When the earliest postponed row becomes due; None when nothing is pending."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.min(func.coalesce(d.c.retry_at, utcnow()))).where(
                d.c.send == send, d.c.status == "pending"
            )
        ).scalar()


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


RESOLVABLE = ("unknown", "pending")
"""Statuses an event about the delivery settles as sent: a pending row here is one queued again
(`--resend-unknown`) or for a retry, and the event says the service has it already."""

_EVENT_RANK = {
    "delivered": 1,
    "opened": 2,
    "clicked": 3,
    "unsubscribed": 4,
    "bounced": 5,
    "complained": 6,
}


def record_event(
    engine: Engine,
    *,
    send_id: str | None = None,
    provider_id: str | None = None,
    event: str,
    detail: str = "",
) -> bool:
    """Note what a webhook reported about one delivery (delivered, bounced, complained, opened...),
    found by our send id or the provider's message id. A weaker event never hides a stronger one
    (a late "delivered" after "bounced"). An event of a delivery that is `unknown` (or queued
    again to resend it) proves the service took it: the row becomes `sent`, `resolved_by` the
    event. Returns whether a delivery matched."""
    if send_id is None and provider_id is None:
        raise ValueError("record_event needs send_id or provider_id")
    where = d.c.send_id == send_id if send_id is not None else d.c.provider_id == provider_id
    with write(engine) as connection:
        row = connection.execute(
            select(d.c.send_id, d.c.event, d.c.status).where(where).limit(1)
        ).first()
        if row is None:
            return False
        if row.status in RESOLVABLE and event in _EVENT_RANK:
            connection.execute(
                update(d)
                .where(d.c.send_id == row.send_id, d.c.status.in_(RESOLVABLE))
                .values(
                    status="sent", reason="", resolved_by=f"{event} webhook", updated_at=utcnow()
                )
            )
        if _EVENT_RANK.get(row.event or "", 0) <= _EVENT_RANK.get(event, 0):
            connection.execute(
                update(d)
                .where(d.c.send_id == row.send_id)
                .values(event=event, event_detail=detail[:1000], event_at=utcnow())
            )
    return True


def erase(connection: Connection, subscriber_id: int | None, address: str, secret: str) -> None:
    """Take one person out of the ledger (`subscribers delete`): each of their deliveries keeps
    its status (the campaign's counts stay right) and, in place of the address, a hash of it
    keyed with the workspace's `secret` (no one without the key can test an address against
    it); name, merge fields and any service message naming them go. Pending ones are skipped."""
    key = hashlib.sha256(b"campaign.ledger.erase:" + secret.encode()).digest()
    keyed = "erased:" + hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
    theirs = d.c.email == address
    if subscriber_id is not None:
        theirs = or_(theirs, d.c.subscriber_id == subscriber_id)
    connection.execute(
        update(d)
        .where(theirs, d.c.status == "pending")
        .values(status="skipped", reason="erased", updated_at=utcnow())
    )
    naming = func.lower(d.c.reason).contains(address, autoescape=True)
    connection.execute(
        update(d)
        .where(theirs)
        .values(
            email=keyed,
            recipient={},
            event_detail=None,
            reason=case((naming, "erased"), else_=d.c.reason),
        )
    )
