"""`campaign dispatch`: what cron runs every minute. Sends what is due, resumes what a
crash interrupted, reports what was missed, and exits.

Who sends what is decided in the database, so it holds on SQLite and PostgreSQL alike
and across hosts sharing one PostgreSQL database:

- Starting a schedule is a compare-and-set, `UPDATE schedules SET state='running'
  WHERE campaign=? AND state='scheduled'`: of two dispatchers started together,
  exactly one sees a row changed.
- Working on a running send needs a worker slot: a row (campaign, slot) in
  `schedule_workers` with a lease that the worker renews while it sends. A slot is
  taken by an INSERT (the primary key refuses a second one) or, once its lease has
  expired because its dispatcher was killed, by an UPDATE that compares the old
  lease. The next run thus resumes a send that a killed dispatcher left.
- `workers` slots per send (default 1) let several dispatchers, on any hosts, share
  one large send: the engine claims deliveries in batches that never overlap, so
  every recipient is still sent once. Each worker applies the rate limit on its own.
- A schedule later than the grace period (`[schedule] grace_hours`, default 6) is
  marked missed and never sent late. A running send is resumed however late: part of
  the list already has it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Engine, ForeignKey, Integer, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaign.config import Config
from campaign.db import connect, metadata
from campaign.errors import CampaignError
from campaign.audience.tables import UTCDateTime, utcnow
from campaign.schedule import Schedule, State, format_local, frozen_compiled, get_schedule, schedules

LEASE = timedelta(seconds=60)
"""How long a worker's claim lasts without a heartbeat: a killed dispatcher's send
waits at most this long (plus the cron interval) before the next run resumes it."""

HEARTBEAT = LEASE / 4

schedule_workers = Table(
    "schedule_workers",
    metadata,
    Column("campaign", String(200), ForeignKey("schedules.campaign"), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("worker_id", String(200), nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
)

Log = Callable[[str], None]


def new_worker_id() -> str:
    """Names this dispatcher in the ledger and in leases: host, process, and a random part."""
    return f"dispatch-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# --- claims -------------------------------------------------------------------------------


def mark_missed(engine: Engine, now: datetime, grace: timedelta) -> list[Schedule]:
    """Mark every schedule later than `grace` as missed; returns those this call marked."""
    late = schedules.c.state == State.SCHEDULED, schedules.c.send_at < now - grace
    with engine.connect() as connection:
        candidates = connection.execute(select(schedules.c.campaign).where(*late)).scalars().all()
    marked = []
    for slug in candidates:
        with engine.begin() as connection:
            changed = connection.execute(
                update(schedules)
                .where(schedules.c.campaign == slug, *late)
                .values(state=State.MISSED, finished_at=now, detail="not sent within the grace period")
            ).rowcount
        if changed:
            marked.append(_load(engine, slug))
    return marked


def start_due(engine: Engine, now: datetime, grace: timedelta) -> list[str]:
    """Move every due schedule to running; returns the campaigns this call started."""
    due = (
        schedules.c.state == State.SCHEDULED,
        schedules.c.send_at <= now,
        schedules.c.send_at >= now - grace,
    )
    with engine.connect() as connection:
        candidates = connection.execute(select(schedules.c.campaign).where(*due).order_by(schedules.c.send_at)).scalars().all()
    started = []
    for slug in candidates:
        with engine.begin() as connection:
            changed = connection.execute(
                update(schedules).where(schedules.c.campaign == slug, *due).values(state=State.RUNNING, started_at=now)
            ).rowcount
        if changed:
            started.append(slug)
    return started


def claim_slot(engine: Engine, slug: str, worker_id: str, now: datetime, workers: int) -> int | None:
    """Take a free or expired worker slot on a running send; None when all are held."""
    for slot in range(workers):
        key = (schedule_workers.c.campaign == slug, schedule_workers.c.slot == slot)
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(schedule_workers).values(campaign=slug, slot=slot, worker_id=worker_id, lease_until=now + LEASE)
                )
            return slot
        except IntegrityError:
            pass
        with engine.begin() as connection:
            changed = connection.execute(
                update(schedule_workers)
                .where(*key, schedule_workers.c.lease_until < now)
                .values(worker_id=worker_id, lease_until=now + LEASE)
            ).rowcount
        if changed:
            return slot
    return None


def renew_slot(engine: Engine, slug: str, slot: int, worker_id: str, now: datetime) -> bool:
    """Extend this worker's lease; False if another worker has taken the slot over."""
    with engine.begin() as connection:
        return bool(
            connection.execute(
                update(schedule_workers)
                .where(
                    schedule_workers.c.campaign == slug,
                    schedule_workers.c.slot == slot,
                    schedule_workers.c.worker_id == worker_id,
                )
                .values(lease_until=now + LEASE)
            ).rowcount
        )


def release_slot(engine: Engine, slug: str, slot: int, worker_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            delete(schedule_workers).where(
                schedule_workers.c.campaign == slug,
                schedule_workers.c.slot == slot,
                schedule_workers.c.worker_id == worker_id,
            )
        )


def finish(engine: Engine, slug: str, state: State, detail: str, now: datetime) -> bool:
    """Record how a running send ended; False if another worker recorded it first."""
    with engine.begin() as connection:
        return bool(
            connection.execute(
                update(schedules)
                .where(schedules.c.campaign == slug, schedules.c.state == State.RUNNING)
                .values(state=state, finished_at=now, detail=detail)
            ).rowcount
        )


def running(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(schedules.c.campaign).where(schedules.c.state == State.RUNNING).order_by(schedules.c.started_at)
        )
        return list(rows.scalars())


def _load(engine: Engine, slug: str) -> Schedule:
    return get_schedule(engine, slug)


# --- the run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one dispatch run did to one campaign, as one plain line."""

    campaign: str
    state: State
    line: str
    ok: bool


@dataclass
class DispatchReport:
    worker_id: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def run_dispatch(
    config: Config,
    now: datetime | None = None,
    *,
    workers: int = 1,
    log: Log | None = None,
    progress: Any = None,
    provider: Any = None,
    worker_id: str | None = None,
) -> DispatchReport:
    """One dispatch run: mark missed schedules, send every due one, resume or join
    running ones with a free worker slot, and return what happened.

    `now` is for tests (a fixed clock); by default the clock is read at each step, so
    a schedule that falls due during a long send goes out in the same run.
    """
    engine = connect(config.database_url)
    report = DispatchReport(worker_id or new_worker_id())
    say = log or (lambda line: None)
    grace = timedelta(hours=config.schedule.grace_hours)
    clock = (lambda: now) if now is not None else utcnow

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        say(outcome.line)

    tried: set[str] = set()
    while True:
        for schedule in mark_missed(engine, clock(), grace):
            record(_missed(schedule, clock(), config))
        start_due(engine, clock(), grace)
        todo = [slug for slug in running(engine) if slug not in tried]
        if not todo:
            return report
        for slug in todo:
            tried.add(slug)
            slot = claim_slot(engine, slug, report.worker_id, clock(), workers)
            if slot is not None:
                record(_work(engine, config, slug, slot, report.worker_id, clock, say, progress, provider))


def _missed(schedule: Schedule, now: datetime, config: Config) -> Outcome:
    late = now - schedule.send_at
    hours = late.total_seconds() / 3600
    return Outcome(
        schedule.campaign,
        State.MISSED,
        f"{schedule.campaign}: MISSED, not sent: it was due {format_local(schedule.send_at, config.tz)}, "
        f"{hours:.1f} h ago, more than the {config.schedule.grace_hours:g} h grace period; "
        f"schedule it again with `campaign send {schedule.campaign} --list {schedule.list_name} --at ...`",
        ok=False,
    )


def _work(
    engine: Engine,
    config: Config,
    slug: str,
    slot: int,
    worker_id: str,
    clock: Callable[[], datetime],
    say: Log,
    progress: Any,
    provider: Any,
) -> Outcome:
    """Send (or resume, or help with) one running schedule while holding a worker slot."""
    schedule = _load(engine, slug)
    compiled = frozen_compiled(engine, slug)
    say(
        f"{slug}: sending to list {schedule.list_name!r} "
        f"(scheduled for {format_local(schedule.send_at, config.tz)}, worker slot {slot})"
    )
    try:
        summary = asyncio.run(_send(engine, config, schedule, compiled, slot, worker_id, clock, progress, provider))
    except CampaignError as exc:
        finish(engine, slug, State.FAILED, str(exc), clock())
        return Outcome(slug, State.FAILED, f"{slug}: FAILED: {exc}", ok=False)
    finally:
        release_slot(engine, slug, slot, worker_id)
    state, detail, ok = _ending(summary)
    finish(engine, slug, state, detail, clock())
    return Outcome(slug, state, f"{slug}: {state}: {detail}", ok=ok)


async def _send(
    engine: Engine,
    config: Config,
    schedule: Schedule,
    compiled: Any,
    slot: int,
    worker_id: str,
    clock: Callable[[], datetime],
    progress: Any,
    provider: Any,
) -> Any:
    from campaign.send import send_campaign

    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), HEARTBEAT.total_seconds())
            except TimeoutError:
                await asyncio.to_thread(renew_slot, engine, schedule.campaign, slot, worker_id, clock())

    beating = asyncio.create_task(heartbeat())
    try:
        return await send_campaign(
            config,
            compiled,
            list_name=schedule.list_name,
            topics=schedule.topics,
            provider=provider,
            progress=progress,
            worker_id=worker_id,
        )
    finally:
        stop.set()
        await beating


def _ending(summary: Any) -> tuple[State, str, bool]:
    """The schedule state, a one-line summary, and whether all went well."""
    return State.FINISHED, str(summary), True
