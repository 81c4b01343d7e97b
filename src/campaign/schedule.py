"""Scheduled sends: a campaign frozen now, sent later by `campaign dispatch`.

A schedule stores the compiled campaign as JSON when it is made, so an edit to
the source afterwards changes nothing that goes out; scheduling again takes the
new content. Times are stored in UTC; a time without a zone or offset is read in
the workspace's time zone (campaign.toml `timezone`).

Daylight saving, resolved one way (PEP 495's fold=0, what zoneinfo does):
- a local time that does not exist (02:30 on a day the clocks skip from 02:00 to
  03:00) moves forward by the gap: 03:30, the new offset;
- a local time that occurs twice (01:30 on a day the clocks go back) is the first
  occurrence, still on summer time.
Both are reported to the user as a note when the schedule is made.

A schedule moves through these states (dispatch.py drives them):

    scheduled ──due──> running ──> finished | paused | failed
        │                 ^  (a killed dispatcher's lease expires; the next run resumes)
        └──too late──> missed            unschedule deletes a scheduled or missed one
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from campaign.assets import store_assets
from campaign.audience.choice import parsed
from campaign.audience.tables import UTCDateTime, utcnow
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect, metadata
from campaign.errors import UserError
from campaign.send.ledger import Summary, sends, summary


class ScheduleError(UserError):
    """A schedule that cannot be made or cancelled: a time in the past, a send already started."""


class State(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    MISSED = "missed"
    HELD = "held"
    """Due, but preflight refused it at dispatch: nothing sent, the reasons in `detail`."""


NOT_STARTED = (State.SCHEDULED, State.MISSED, State.FAILED, State.HELD)
"""States a schedule can be replaced or cancelled in, as long as the ledger holds no send of
it: nothing has gone out (a send that failed before it began, e.g. a missing secret, or one
that preflight held back)."""


schedules = Table(
    "schedules",
    metadata,
    Column("campaign", String(200), primary_key=True),
    Column("list_name", String(200), nullable=False),
    Column("topics", Text, nullable=False, doc="JSON array of topic names"),
    Column("segment", Text, doc="the --where/--segment condition; none: the whole list"),
    Column("send_at", UTCDateTime, nullable=False),
    Column("timezone", String(64), nullable=False, doc="zone the time was given in, for display"),
    Column("compiled", Text, nullable=False, doc="the frozen Compiled, as JSON"),
    Column("source_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column(
        "detail", Text, doc="why it was missed, paused or failed; the send summary when finished"
    ),
    Index("ix_schedules_state_send_at", "state", "send_at"),
)


# --- time -------------------------------------------------------------------------------

TIME_HELP = (
    'YYYY-MM-DD HH:MM, optionally with an offset ("+02:00", "Z") or a zone name ("Europe/Berlin")'
)


@dataclass(frozen=True)
class Resolution:
    """A send time as the user meant it: `at` in UTC, `local` where it was given, and a
    note when daylight saving moved or disambiguated it."""

    at: datetime
    local: datetime
    note: str | None = None


def _zone_label(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, ZoneInfo) else str(zone)


def localise(naive: datetime, zone: tzinfo) -> Resolution:
    """Attach `zone` to a wall-clock time, resolving daylight-saving gaps and overlaps (fold=0)."""
    first = naive.replace(tzinfo=zone, fold=0)
    local = first.astimezone(UTC).astimezone(zone)
    note = None
    if local.replace(tzinfo=None) != naive:
        note = (
            f"{naive:%H:%M} does not exist on {naive:%Y-%m-%d} in {_zone_label(zone)} "
            f"(the clocks go forward); moved forward by the gap to {local:%H:%M %Z}"
        )
    elif first.utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset():
        note = (
            f"{naive:%H:%M} occurs twice on {naive:%Y-%m-%d} in {_zone_label(zone)} "
            f"(the clocks go back); taken as the first, {local:%H:%M %Z} (UTC{local:%z})"
        )
    return Resolution(at=local.astimezone(UTC), local=local, note=note)


_OFFSET_SUFFIX = re.compile(r"\s+(Z|[+-]\d{2}(:?\d{2})?)$")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def resolve_time(value: str | datetime, zone: tzinfo) -> Resolution:
    """Read a send time. A value with an offset or zone keeps it; a bare wall-clock time is
    in `zone` (the workspace's time zone), with daylight saving resolved as documented above."""
    if isinstance(value, datetime):
        if isinstance(value.tzinfo, ZoneInfo):  # a wall-clock time in a zone (send_at: in YAML)
            return localise(value.replace(tzinfo=None), value.tzinfo)
        if value.tzinfo is not None:
            return Resolution(at=value.astimezone(UTC), local=value)
        return localise(value, zone)
    text = _OFFSET_SUFFIX.sub(lambda m: m.group(1), value.strip())
    given_zone: tzinfo | None = None
    head, _, last = text.rpartition(" ")
    if head and _ZONE_NAME.fullmatch(last) and _is_time(head):
        try:
            given_zone = ZoneInfo(last)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"unknown time zone {last!r} in {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        text = head
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(f"cannot read the time {value!r}: use {TIME_HELP}") from None
    if parsed.tzinfo is not None:
        if given_zone is not None:
            raise ScheduleError(f"{value!r} has both an offset and a zone name: give one")
        return Resolution(at=parsed.astimezone(UTC), local=parsed)
    return localise(parsed, given_zone or zone)


def format_local(when: datetime, zone: tzinfo) -> str:
    """A time as the workspace reads it: "2026-12-01 09:00 MST"."""
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


# --- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    campaign: str
    list_name: str
    topics: tuple[str, ...]
    send_at: datetime
    timezone: str
    source_hash: str
    state: State
    scheduled_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None
    segment: str | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> Schedule:
        return cls(
            campaign=row["campaign"],
            list_name=row["list_name"],
            topics=tuple(json.loads(row["topics"])),
            send_at=row["send_at"],
            timezone=row["timezone"],
            source_hash=row["source_hash"],
            state=State(row["state"]),
            scheduled_at=row["scheduled_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            detail=row["detail"],
            segment=row["segment"],
        )


_COLUMNS = [c for c in schedules.c if c.name != "compiled"]


@dataclass(frozen=True)
class Scheduled:
    """What `schedule_send` did: the schedule, and a daylight-saving note if any."""

    schedule: Schedule
    note: str | None
    replaced: bool


def campaign_slug(ref: str) -> str:
    """The slug a CAMPAIGN argument names: a slug, or a path whose last part is the slug."""
    return Path(ref.rstrip("/\\")).name or ref


def _send_status(connection: Connection, slug: str) -> str | None:
    """The ledger's status of the send of `slug` (by a dispatcher or `campaign send`), if begun."""
    status: str | None = connection.execute(
        select(sends.c.status).where(sends.c.campaign == slug)
    ).scalar()
    return status


def schedule_send(
    config: Config,
    compiled: Compiled,
    *,
    list_name: str,
    topics: Sequence[str] = (),
    at: str | datetime | None = None,
    now: datetime | None = None,
    segment: str | None = None,
) -> Scheduled:
    """Freeze `compiled` and schedule it for `at` (default: its `send_at:`), replacing a
    schedule of the same campaign that has not started. A time in the past is refused."""
    now = now or utcnow()
    if at is None:
        at = compiled.send_at
    if at is None:
        raise ScheduleError(
            f"{compiled.slug}: no send time: give --at or set send_at: in campaign.yaml"
        )
    resolution = resolve_time(at, config.tz)
    if resolution.at <= now:
        raise ScheduleError(
            f"{compiled.slug}: the send time {format_local(resolution.at, config.tz)} is in the "
            f"past (now {format_local(now, config.tz)}); give a later --at or change send_at: "
            "in campaign.yaml"
        )
    values = {
        "campaign": compiled.slug,
        "list_name": list_name,
        "topics": json.dumps(list(topics)),
        "segment": segment,
        "send_at": resolution.at,
        "timezone": _zone_label(resolution.local.tzinfo or config.tz),
        "compiled": compiled.model_dump_json(),
        "source_hash": compiled.source_hash,
        "state": State.SCHEDULED,
        "scheduled_at": now,
    }
    engine = connect(config.database_url)
    store_assets(engine, compiled)
    started = f"{compiled.slug} has already been sent or is being sent"
    try:
        with engine.begin() as connection:
            if status := _send_status(connection, compiled.slug):
                raise ScheduleError(
                    f"{started} (send {status}); see `campaign status {compiled.slug}`"
                )
            replaced = connection.execute(
                delete(schedules).where(
                    schedules.c.campaign == compiled.slug, schedules.c.state.in_(NOT_STARTED)
                )
            ).rowcount
            connection.execute(insert(schedules).values(values))
    except IntegrityError:
        raise ScheduleError(f"{started} by a schedule; see `campaign schedule`") from None
    return Scheduled(
        schedule=get_schedule(engine, compiled.slug), note=resolution.note, replaced=bool(replaced)
    )


def preflight(
    config: Config, list_name: str, topics: Sequence[str] = (), segment: str | None = None
) -> int:
    """Check now what would stop the send at its time (the list and topics, the signing key,
    the provider's settings and secrets); returns how many recipients the list has today."""
    import asyncio

    from campaign.audience import Store
    from campaign.providers import create

    config.secret_key  # noqa: B018  (raises a ConfigError naming the variable)
    asyncio.run(create(config).aclose())
    return Store.open(config).count_recipients(list_name, topics, parsed(segment))


def find_schedule(engine: Engine, slug: str) -> Schedule | None:
    with engine.connect() as connection:
        row = (
            connection.execute(select(*_COLUMNS).where(schedules.c.campaign == slug))
            .mappings()
            .first()
        )
    return None if row is None else Schedule.from_row(row)


def get_schedule(engine: Engine, slug: str) -> Schedule:
    schedule = find_schedule(engine, slug)
    if schedule is None:
        raise ScheduleError(f"{slug} is not scheduled; see `campaign schedule`")
    return schedule


def frozen_compiled(engine: Engine, slug: str) -> Compiled:
    """The compiled campaign as it was when scheduled."""
    with engine.connect() as connection:
        text = connection.execute(
            select(schedules.c.compiled).where(schedules.c.campaign == slug)
        ).scalar_one()
    return Compiled.model_validate_json(text)


def unschedule(config: Config, ref: str) -> Schedule:
    """Cancel the schedule of a campaign that has not started sending (scheduled or missed)."""
    slug = campaign_slug(ref)
    engine = connect(config.database_url)
    schedule = get_schedule(engine, slug)
    with engine.begin() as connection:
        deleted = (
            connection.execute(
                delete(schedules).where(
                    schedules.c.campaign == slug, schedules.c.state.in_(NOT_STARTED)
                )
            ).rowcount
            if _send_status(connection, slug) is None
            else 0
        )
    if not deleted:
        now = get_schedule(engine, slug)
        raise ScheduleError(
            f"{slug} has already started sending ({now.state}); it can no longer be unscheduled "
            f"(`campaign status {slug}` shows how far it got)"
        )
    return schedule


def load_schedules(engine: Engine) -> list[Schedule]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(*_COLUMNS).order_by(schedules.c.send_at, schedules.c.campaign)
        ).mappings()
        return [Schedule.from_row(row) for row in rows]


@dataclass(frozen=True)
class Listed:
    """A schedule as `campaign schedule` shows it: with the ledger's counts once it has
    started, and whether its source changed since it was frozen."""

    schedule: Schedule
    send: Summary | None = None
    source: str | None = None
    """None when not checked; "unchanged", "changed since scheduled", or "does not build: ..."."""

    @property
    def state(self) -> State:
        """The ledger's word once a send exists (a paused send resumed by hand is finished)."""
        if self.send is not None and self.schedule.state != State.MISSED:
            return State(self.send.status)
        return self.schedule.state


def list_schedules(config: Config, *, check_source: bool = True) -> list[Listed]:
    """Every schedule, soonest first. For ones not yet started, compare the frozen build
    with a fresh one, so the user sees an edit that scheduling again would take."""
    engine = connect(config.database_url)
    listed = []
    for schedule in load_schedules(engine):
        send = summary(engine, schedule.campaign)
        source = (
            _source_state(config, schedule)
            if check_source and send is None and schedule.state in NOT_STARTED
            else None
        )
        listed.append(Listed(schedule, send, source))
    return listed


def counts_line(send: Summary) -> str:
    """The ledger's counts in one line: "4,982 sent, 0 failed, 0 unknown, 18 skipped"."""
    parts = [
        f"{send.sent:,} sent",
        f"{send.failed:,} failed",
        f"{send.unknown:,} unknown",
        f"{send.skipped:,} skipped",
    ]
    if send.pending:
        parts.append(f"{send.pending:,} to go")
    reasons = {**send.failed_reasons, **send.unknown_reasons}
    if reasons:
        parts.append(f"most common problem: {max(reasons, key=lambda reason: reasons[reason])}")
    return ", ".join(parts)


def _source_state(config: Config, schedule: Schedule) -> str:
    from campaign.compile import build  # the compiler is only needed for this check

    try:
        fresh = build(config, schedule.campaign)
    except UserError as exc:
        return f"does not build: {exc}"
    return "unchanged" if fresh.source_hash == schedule.source_hash else "changed since scheduled"


__all__ = [
    "Listed",
    "Resolution",
    "Schedule",
    "ScheduleError",
    "Scheduled",
    "State",
    "frozen_compiled",
    "list_schedules",
    "localise",
    "resolve_time",
    "schedule_send",
    "schedules",
    "unschedule",
]
