"""Deliveries as one sender works on them: claimed, answered, put back, or found interrupted.

A row is marked `sending` and committed before the provider is called, so a crash
can never make us send it twice without knowing: such rows become `unknown`.
Claims are atomic: PostgreSQL locks the chosen rows with FOR UPDATE SKIP LOCKED
(several hosts share one send), SQLite serialises claimers with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update

from campaign.audience.models import display_name, merge_fields
from campaign.audience.tables import subscribers, utcnow
from campaign.send import lease
from campaign.send.tables import d, sends, write


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
    outcomes: Sequence[Outcome] = (),
    back: Sequence[str] = (),
) -> list[Queued] | None:
    """Take up to `limit` due pending rows for `worker` and mark them `sending`, atomically.

    Recipients no longer mailable (unsubscribed, bounced since the send began) are marked
    `skipped` in the same transaction. None when the send is no longer running (paused or
    failed by another engine): stop claiming.

    The same transaction first writes the worker's last batch: its `outcomes` (`record`) and
    the rows to put `back` (`release`). One transaction per batch instead of two: on SQLite
    each is a turn at the write lock and an fsync, and workers wait for both.
    """
    now = utcnow()
    with write(engine) as connection:
        _settle(connection, worker, outcomes, back, now)
        status = connection.execute(_status, {"send": send}).scalar()
        if status != "running":
            return None
        query = _pending.limit(limit)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=d)
        rows = connection.execute(query, {"send": send, "now": now}).all()
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
                _take,
                {"keys": [row.send_id for row in taken], "worker": worker, "now": now},
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


# The statements of every claim, built once (SQLAlchemy caches their SQL, not their making).
_status = select(sends.c.status).where(sends.c.id == bindparam("send"))
_pending = (
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
        d.c.send == bindparam("send"),
        d.c.status == "pending",
        or_(d.c.retry_at.is_(None), d.c.retry_at <= bindparam("now")),
    )
    .order_by(d.c.subscriber_id)
)
_take = (
    update(d)
    .where(d.c.send_id.in_(bindparam("keys", expanding=True)))
    .values(
        status="sending",
        claimed_by=bindparam("worker"),
        claimed_at=bindparam("now"),
        updated_at=bindparam("now"),
        attempts=d.c.attempts + 1,
    )
)
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
_release = (
    update(d)
    .where(
        d.c.send_id.in_(bindparam("keys", expanding=True)),
        d.c.claimed_by == bindparam("worker"),
        d.c.status == "sending",
    )
    .values(status="pending", attempts=d.c.attempts - 1, updated_at=bindparam("now"))
)


def _settle(
    connection: Connection,
    worker: str,
    outcomes: Sequence[Outcome],
    back: Sequence[str],
    now: datetime,
) -> None:
    """Write a batch's `outcomes` and put its rows `back`, in the caller's transaction."""
    if back:
        connection.execute(_release, {"keys": list(back), "worker": worker, "now": now})
    if outcomes:
        connection.execute(
            _record,
            [
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
            ],
        )


def settle(
    engine: Engine, worker: str, outcomes: Sequence[Outcome], back: Sequence[str] = ()
) -> None:
    """Write what the provider answered for a batch, and put `back` to pending the rows it
    refused as a whole (nothing went out: no attempt used), in one transaction. Only rows this
    worker claimed are touched; a row a resumer already called unknown still gets the real
    outcome if it arrives after all."""
    if outcomes or back:
        with write(engine) as connection:
            _settle(connection, worker, outcomes, back, utcnow())


def record(engine: Engine, worker: str, outcomes: Sequence[Outcome]) -> None:
    """Write what the provider answered (`settle` without rows to put back)."""
    settle(engine, worker, outcomes)


def release(engine: Engine, worker: str, send_ids: Sequence[str]) -> None:
    """Put claimed rows back to pending: the provider refused the whole request, nothing went out."""
    settle(engine, worker, (), send_ids)


def next_retry_at(engine: Engine, send: int) -> datetime | None:
    """When the earliest postponed row becomes due; None when nothing is pending."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.min(func.coalesce(d.c.retry_at, utcnow()))).where(
                d.c.send == send, d.c.status == "pending"
            )
        ).scalar()
