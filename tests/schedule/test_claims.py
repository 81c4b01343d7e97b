"""The database decides who sends: due, not yet due, missed; compare-and-set starts; leases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from campaign.config import Config
from campaign.db import connect
from campaign.dispatch import LEASE, claim_slot, mark_missed, release_slot, renew_slot, start_due
from campaign.schedule import State, get_schedule, schedule_send
from tests.schedule.conftest import make_compiled

SCHEDULED_AT = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
DUE = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 09:00 in Denver
GRACE = timedelta(hours=6)


def at_once(work: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
    """`work(arg)` for each of `args`, each in its own thread, all let go at the same moment
    (as racing dispatchers are); the results in the order of `args`."""
    barrier = threading.Barrier(len(args))

    def released(arg: Any) -> Any:
        barrier.wait()
        return work(arg)

    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(released, args))


def _schedule(config: Config, slug: str = "2026-12-news", at: str = "2026-12-01 09:00") -> None:
    schedule_send(config, make_compiled(slug), list_name="newsletter", at=at, now=SCHEDULED_AT)


def test_not_yet_due_is_left_alone(config: Config) -> None:
    _schedule(config)
    engine = connect(config.database_url)
    before = DUE - timedelta(seconds=1)
    assert mark_missed(engine, before, GRACE) == []
    assert start_due(engine, before, GRACE) == []
    assert get_schedule(engine, "2026-12-news").state == State.SCHEDULED


def test_due_starts_at_its_time_and_within_the_grace(config: Config) -> None:
    _schedule(config, "on-time")
    _schedule(config, "late", at="2026-12-01 03:00:01")  # 6 h minus a second before DUE
    engine = connect(config.database_url)
    assert mark_missed(engine, DUE, GRACE) == []
    assert start_due(engine, DUE, GRACE) == ["late", "on-time"]
    assert get_schedule(engine, "on-time").started_at == DUE


def test_missed_beyond_the_grace_is_never_started(config: Config) -> None:
    _schedule(config)
    engine = connect(config.database_url)
    too_late = DUE + GRACE + timedelta(seconds=1)
    missed = mark_missed(engine, too_late, GRACE)
    assert [(s.campaign, s.state) for s in missed] == [("2026-12-news", State.MISSED)]
    assert start_due(engine, too_late, GRACE) == []
    assert mark_missed(engine, too_late, GRACE) == []  # reported once
    assert get_schedule(engine, "2026-12-news").state == State.MISSED


def test_exactly_at_the_grace_limit_is_still_due(config: Config) -> None:
    _schedule(config)
    engine = connect(config.database_url)
    assert mark_missed(engine, DUE + GRACE, GRACE) == []
    assert start_due(engine, DUE + GRACE, GRACE) == ["2026-12-news"]


def test_two_dispatchers_start_a_schedule_once(config: Config) -> None:
    for n in range(20):
        _schedule(config, f"campaign-{n:02}")
    engine = connect(config.database_url)
    started = at_once(lambda _dispatcher: start_due(engine, DUE, GRACE), range(4))
    everything = sorted(slug for run in started for slug in run)
    assert everything == [f"campaign-{n:02}" for n in range(20)]


def test_worker_slots_are_exclusive_and_expire(config: Config) -> None:
    _schedule(config)
    engine = connect(config.database_url)
    start_due(engine, DUE, GRACE)
    assert claim_slot(engine, "2026-12-news", "a", DUE, workers=1) == 0
    assert claim_slot(engine, "2026-12-news", "b", DUE, workers=1) is None
    assert claim_slot(engine, "2026-12-news", "b", DUE, workers=2) == 1
    assert (
        claim_slot(engine, "2026-12-news", "c", DUE + LEASE - timedelta(seconds=1), workers=2)
        is None
    )
    # "a" was killed: its lease runs out and the next dispatcher takes its slot over.
    assert (
        claim_slot(engine, "2026-12-news", "c", DUE + LEASE + timedelta(seconds=1), workers=1) == 0
    )
    assert not renew_slot(engine, "2026-12-news", 0, "a", DUE)
    assert renew_slot(engine, "2026-12-news", 0, "c", DUE)
    release_slot(engine, "2026-12-news", 0, "a")  # a stale worker cannot free a slot it lost
    assert claim_slot(engine, "2026-12-news", "d", DUE, workers=1) is None
    release_slot(engine, "2026-12-news", 0, "c")
    assert claim_slot(engine, "2026-12-news", "d", DUE, workers=1) == 0


def test_concurrent_slot_claims_give_each_slot_once(config: Config) -> None:
    _schedule(config)
    engine = connect(config.database_url)
    start_due(engine, DUE, GRACE)
    workers = [f"w{i}" for i in range(6)]
    slots = at_once(lambda name: claim_slot(engine, "2026-12-news", name, DUE, workers=3), workers)
    taken = sorted(slot for slot in slots if slot is not None)
    assert taken == [0, 1, 2]
