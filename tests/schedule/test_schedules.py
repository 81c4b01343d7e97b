"""Making, replacing, listing and cancelling schedules; the content is frozen when scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaign.config import Config
from campaign.db import connect
from campaign.schedule import (
    ScheduleError,
    State,
    frozen_compiled,
    get_schedule,
    list_schedules,
    schedule_send,
    unschedule,
)
from tests.schedule.conftest import make_compiled

NOW = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # Friday 10:00 in Denver


def test_schedule_freezes_the_compiled_campaign(config: Config) -> None:
    compiled = make_compiled()
    done = schedule_send(
        config, compiled, list_name="newsletter", topics=["events"], at="2026-12-01 09:00", now=NOW
    )
    schedule = done.schedule
    assert schedule.state == State.SCHEDULED
    assert schedule.send_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert (schedule.list_name, schedule.topics, schedule.timezone) == (
        "newsletter",
        ("events",),
        "America/Denver",
    )
    assert not done.replaced and done.note is None
    assert frozen_compiled(connect(config.database_url), compiled.slug) == compiled


def test_send_at_from_campaign_yaml_is_the_default(config: Config) -> None:
    send_at = datetime(2026, 12, 1, 9, 0, tzinfo=config.tz)
    done = schedule_send(config, make_compiled(send_at=send_at), list_name="newsletter", now=NOW)
    assert done.schedule.send_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_at_overrides_send_at(config: Config) -> None:
    compiled = make_compiled(send_at=datetime(2026, 12, 1, 9, 0, tzinfo=config.tz))
    done = schedule_send(config, compiled, list_name="newsletter", at="2026-12-02 09:00", now=NOW)
    assert done.schedule.send_at == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def test_no_time_and_past_times_are_refused(config: Config) -> None:
    with pytest.raises(ScheduleError, match="no send time: give --at or set send_at:"):
        schedule_send(config, make_compiled(), list_name="newsletter", now=NOW)
    with pytest.raises(
        ScheduleError, match=r"2026-11-27 09:00 MST is in the past \(now 2026-11-27 10:00 MST\)"
    ):
        schedule_send(
            config, make_compiled(), list_name="newsletter", at="2026-11-27 09:00", now=NOW
        )
    past_yaml = make_compiled(send_at=NOW - timedelta(days=1))
    with pytest.raises(ScheduleError, match="in the past"):
        schedule_send(config, past_yaml, list_name="newsletter", now=NOW)
    assert list_schedules(config, check_source=False) == []


def test_dst_note_is_returned(config: Config) -> None:
    done = schedule_send(
        config, make_compiled(), list_name="newsletter", at="2027-03-14 02:30", now=NOW
    )
    assert done.schedule.send_at == datetime(2027, 3, 14, 9, 30, tzinfo=UTC)
    assert done.note is not None and "03:30 MDT" in done.note


def test_rescheduling_replaces_time_and_content(config: Config) -> None:
    schedule_send(
        config, make_compiled(subject="Old"), list_name="newsletter", at="2026-12-01 09:00", now=NOW
    )
    new = make_compiled(subject="New", source_hash="b" * 64)
    done = schedule_send(config, new, list_name="board", at="2026-12-03 09:00", now=NOW)
    assert done.replaced
    assert (done.schedule.list_name, done.schedule.source_hash) == ("board", "b" * 64)
    assert frozen_compiled(connect(config.database_url), new.slug).subject == "New"
    assert [listed.schedule.campaign for listed in list_schedules(config, check_source=False)] == [
        new.slug
    ]


def test_list_is_ordered_by_send_time(config: Config) -> None:
    schedule_send(
        config, make_compiled("b-later"), list_name="newsletter", at="2026-12-09 09:00", now=NOW
    )
    schedule_send(
        config, make_compiled("a-sooner"), list_name="newsletter", at="2026-12-01 09:00", now=NOW
    )
    assert [x.schedule.campaign for x in list_schedules(config, check_source=False)] == [
        "a-sooner",
        "b-later",
    ]


def test_unschedule_cancels_one_not_started(config: Config) -> None:
    schedule_send(config, make_compiled(), list_name="newsletter", at="2026-12-01 09:00", now=NOW)
    removed = unschedule(config, "campaigns/2026-12-news/")
    assert removed.campaign == "2026-12-news"
    assert list_schedules(config, check_source=False) == []
    with pytest.raises(ScheduleError, match="2026-12-news is not scheduled"):
        unschedule(config, "2026-12-news")


def test_a_started_schedule_can_be_neither_cancelled_nor_replaced(config: Config) -> None:
    from campaign.dispatch import start_due

    engine = connect(config.database_url)
    schedule_send(config, make_compiled(), list_name="newsletter", at="2026-12-01 09:00", now=NOW)
    due = datetime(2026, 12, 1, 16, 0, 1, tzinfo=UTC)
    assert start_due(engine, due, timedelta(hours=6)) == ["2026-12-news"]
    assert get_schedule(engine, "2026-12-news").state == State.RUNNING
    with pytest.raises(ScheduleError, match="already started sending \\(running\\)"):
        unschedule(config, "2026-12-news")
    with pytest.raises(ScheduleError, match="already been sent or is being sent"):
        schedule_send(
            config, make_compiled(), list_name="newsletter", at="2026-12-09 09:00", now=due
        )
