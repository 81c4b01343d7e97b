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
- A due schedule passes preflight again before it starts (the same checks as `campaign
  send`): the sender, the public URL or the images may have changed since `send --at`.
  When preflight refuses, the schedule is `held` with the reasons, nothing is sent, and
  later runs leave it alone until it is scheduled again.
- A schedule later than the grace period (`[schedule] grace_hours`, default 6) is
  marked missed and never sent late. A running send is resumed however late: part of
  the list already has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from campaign.audience.tables import UTCDateTime, utcnow
from campaign.config import Config
from campaign.db import connect, metadata
from campaign.errors import CampaignError
from campaign.preflight import Report, preflight
from campaign.schedule import (
    Schedule,
    State,
    counts_line,
    format_local,
    frozen_compiled,
    get_schedule,
    schedules,
)
from campaign.send import SendSummary, ledger, recovery, send_campaign
from campaign.send.engine import ProgressCallback
from campaign.send.lease import Keeper
from campaign.send.ledger import new_worker_id

LEASE = timedelta(seconds=60)
"""How long a worker's slot lasts without a heartbeat, unless `[send] lease_seconds` says: a
killed dispatcher's send waits at most this long (plus the cron interval) before the next
run resumes it."""


schedule_workers = Table(
    "schedule_workers",
    metadata,
    Column("campaign", String(200), ForeignKey("schedules.campaign"), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("worker_id", String(200), nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
)

Log = Callable[[str], None]


# --- claims -------------------------------------------------------------------------------


def mark_missed(engine: Engine, now: datetime, grace: timedelta) -> list[Schedule]:
    """Mark every schedule later than `grace` as missed; returns those this call marked."""
    late = (schedules.c.state == State.SCHEDULED, schedules.c.send_at < now - grace)
    marked = _claim_each(
        engine, late, state=State.MISSED, finished_at=now, detail="not sent within the grace period"
    )
    return [_load(engine, slug) for slug in marked]


def _due(now: datetime, grace: timedelta) -> tuple[ColumnElement[bool], ...]:
    return (
        schedules.c.state == State.SCHEDULED,
        schedules.c.send_at <= now,
        schedules.c.send_at >= now - grace,
    )


def start_due(engine: Engine, now: datetime, grace: timedelta) -> list[str]:
    """Move every due schedule to running; returns the campaigns this call started."""
    return _claim_each(engine, _due(now, grace), state=State.RUNNING, started_at=now)


def hold_refused(
    engine: Engine, config: Config, now: datetime, grace: timedelta
) -> list[tuple[Schedule, Report]]:
    """Run preflight on every due schedule's frozen build, as `campaign send` would now, and
    mark `held` each one it refuses (only if still waiting: a dispatcher that started it
    first has sent what its own preflight passed). Returns those this call held."""
    with engine.connect() as connection:
        slugs = connection.execute(select(schedules.c.campaign).where(*_due(now, grace)))
        due = list(slugs.scalars())
    held = []
    for slug in due:
        compiled = frozen_compiled(engine, slug)
        folder = config.campaigns_dir / slug
        report = asyncio.run(preflight(config, compiled, folder, engine=engine))
        if not report.errors:
            continue
        detail = "preflight: " + "; ".join(str(check) for check in report.errors)
        waiting = (schedules.c.campaign == slug, *_due(now, grace))
        if _claim_each(engine, waiting, state=State.HELD, finished_at=now, detail=detail):
            held.append((_load(engine, slug), report))
    return held


def _claim_each(engine: Engine, where: tuple[ColumnElement[bool], ...], **values: Any) -> list[str]:
    """Set `values` on each schedule matching `where`, in order of `send_at`, one conditional
    update per campaign: of dispatchers racing for a schedule, only one changes it. Returns
    the campaigns this call changed."""
    with engine.connect() as connection:
        candidates = (
            connection.execute(
                select(schedules.c.campaign).where(*where).order_by(schedules.c.send_at)
            )
            .scalars()
            .all()
        )
    changed = []
    for slug in candidates:
        with engine.begin() as connection:
            rows = connection.execute(
                update(schedules).where(schedules.c.campaign == slug, *where).values(**values)
            ).rowcount
        if rows:
            changed.append(slug)
    return changed


def claim_slot(
    engine: Engine, slug: str, worker_id: str, now: datetime, workers: int, lease: timedelta = LEASE
) -> int | None:
    """Take a free or expired worker slot on a running send; None when all are held."""
    for slot in range(workers):
        key = (schedule_workers.c.campaign == slug, schedule_workers.c.slot == slot)
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(schedule_workers).values(
                        campaign=slug, slot=slot, worker_id=worker_id, lease_until=now + lease
                    )
                )
            return slot
        except IntegrityError:
            pass
        with engine.begin() as connection:
            changed = connection.execute(
                update(schedule_workers)
                .where(*key, schedule_workers.c.lease_until < now)
                .values(worker_id=worker_id, lease_until=now + lease)
            ).rowcount
        if changed:
            return slot
    return None


def renew_slot(
    engine: Engine, slug: str, slot: int, worker_id: str, now: datetime, lease: timedelta = LEASE
) -> bool:
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
                .values(lease_until=now + lease)
            ).rowcount
        )


def others_working(engine: Engine, slug: str, worker_id: str, now: datetime) -> int:
    """How many other dispatchers hold a live slot on this send."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(
                    schedule_workers.c.campaign == slug,
                    schedule_workers.c.worker_id != worker_id,
                    schedule_workers.c.lease_until >= now,
                )
            ).scalar_one()
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
            select(schedules.c.campaign)
            .where(schedules.c.state == State.RUNNING)
            .order_by(schedules.c.started_at)
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
    progress: ProgressCallback | None = None,
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

    def clock() -> datetime:
        return now or utcnow()

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        say(outcome.line)

    tried: set[str] = set()
    while True:
        for schedule in mark_missed(engine, clock(), grace):
            record(_missed(schedule, clock(), config))
        for schedule, refusal in hold_refused(engine, config, clock(), grace):
            record(_held(schedule, refusal))
        start_due(engine, clock(), grace)
        todo = [slug for slug in running(engine) if slug not in tried]
        if not todo:
            return report
        for slug in todo:
            tried.add(slug)
            send = ledger.get_send(engine, slug)
            if send is not None and send.status != "running":
                continue  # paused or failed a moment ago: its worker is recording that
            lease = timedelta(seconds=config.send.lease_seconds)
            slot = claim_slot(engine, slug, report.worker_id, clock(), workers, lease)
            if slot is not None:
                work = _Work(engine, config, _load(engine, slug), slot, report.worker_id, clock)
                record(work.run(say, progress))
            elif why := recovery.stuck(engine, slug, config.send.lease_seconds):
                record(Outcome(slug, State.RUNNING, f"{slug}: STUCK: {why}", ok=False))


def _missed(schedule: Schedule, now: datetime, config: Config) -> Outcome:
    hours = (now - schedule.send_at).total_seconds() / 3600
    return Outcome(
        schedule.campaign,
        State.MISSED,
        f"{schedule.campaign}: MISSED, not sent: it was due "
        f"{format_local(schedule.send_at, config.tz)}, {hours:.1f} h ago, more than the "
        f"{config.schedule.grace_hours:g} h grace period; schedule it again with "
        f"`campaign send {schedule.campaign} --list {schedule.list_name} --at ...`",
        ok=False,
    )


def _held(schedule: Schedule, refusal: Report) -> Outcome:
    slug = schedule.campaign
    lines = [
        f"{slug}: HELD, not sent: {refusal.heading} at dispatch (something changed since it "
        f"was scheduled); fix it, then schedule it again with "
        f"`campaign send {slug} --list {schedule.list_name} --at ...`",
        *(f"  {check}" for check in refusal.errors),
    ]
    return Outcome(slug, State.HELD, "\n".join(lines), ok=False)


@dataclass
class _Work:
    """One worker's turn on one running schedule, holding a worker slot."""

    engine: Engine
    config: Config
    schedule: Schedule
    slot: int
    worker_id: str
    clock: Callable[[], datetime]

    def run(self, say: Log, progress: ProgressCallback | None) -> Outcome:
        """Send (start, resume or help), record how the send stands, then free the slot."""
        slug = self.schedule.campaign
        if others_working(self.engine, slug, self.worker_id, self.clock()):
            doing = "joining the send"
        else:
            doing = "resuming" if ledger.get_send(self.engine, slug) is not None else "sending"
        say(
            f"{slug}: {doing} to list {self.schedule.list_name!r}"
            f"{''.join(f' +{t}' for t in self.schedule.topics)} "
            f"{f'where {self.schedule.segment} ' if self.schedule.segment else ''}"
            f"(due {format_local(self.schedule.send_at, self.config.tz)})"
        )
        try:
            try:
                with Keeper(self.engine, self.worker_id, self.config.send.lease_seconds):
                    summary = asyncio.run(self._send(progress))
            except CampaignError as exc:
                finish(self.engine, slug, State.FAILED, str(exc), self.clock())
                return Outcome(slug, State.FAILED, f"{slug}: FAILED: {exc}", ok=False)
            return self._record(summary)
        finally:
            release_slot(self.engine, slug, self.slot, self.worker_id)

    async def _send(self, progress: ProgressCallback | None) -> SendSummary:
        stop = asyncio.Event()
        lease = timedelta(seconds=self.config.send.lease_seconds)

        async def heartbeat() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), lease.total_seconds() / 4)
                except TimeoutError:
                    await asyncio.to_thread(
                        renew_slot,
                        self.engine,
                        self.schedule.campaign,
                        self.slot,
                        self.worker_id,
                        self.clock(),
                        lease,
                    )

        beating = asyncio.create_task(heartbeat())
        try:
            return await send_campaign(
                self.config,
                frozen_compiled(self.engine, self.schedule.campaign),
                list_name=self.schedule.list_name,
                topics=self.schedule.topics,
                segment=self.schedule.segment,
                engine=self.engine,
                progress=progress,
                worker_id=self.worker_id,
            )
        finally:
            stop.set()
            await beating

    def _record(self, summary: SendSummary) -> Outcome:
        slug = self.schedule.campaign
        counts = counts_line(summary)
        if summary.status == "running" and (
            why := recovery.stuck(self.engine, slug, self.config.send.lease_seconds)
        ):
            return Outcome(slug, State.RUNNING, f"{slug}: STUCK: {why}", ok=False)
        if summary.status == "running":  # other dispatchers still have batches in flight
            return Outcome(
                slug, State.RUNNING, f"{slug}: done here, others still sending: {counts}", ok=True
            )
        state = State(summary.status)
        detail = counts if state == State.FINISHED else f"{summary.note} ({counts})"
        finish(self.engine, slug, state, detail, self.clock())
        label = "finished" if state == State.FINISHED else state.upper()
        return Outcome(slug, state, f"{slug}: {label}: {detail}", ok=summary.ok)
