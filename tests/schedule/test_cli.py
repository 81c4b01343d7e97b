"""The commands: `campaign schedule`, `campaign unschedule`, `campaign dispatch` (missed, idle)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from campaign.audience.tables import utcnow
from campaign.config import Config
from campaign.db import connect
from campaign.dispatch import run_dispatch
from campaign.schedule import State, get_schedule, schedule_send
from tests.conftest import run_cli
from tests.schedule.conftest import make_compiled


def test_schedule_lists_states_and_local_times(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "schedule", "--no-check")[1].strip() == "nothing scheduled"
    now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    schedule_send(
        config,
        make_compiled("dec-news"),
        list_name="newsletter",
        topics=["events"],
        at="2026-12-01 09:00",
        now=now,
    )
    schedule_send(
        config, make_compiled("nov-news"), list_name="newsletter", at="2026-11-28 09:00", now=now
    )
    run_dispatch(
        config, now=datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    )  # nov-news: 7 h late, missed
    code, out, _ = run_cli(capsys, "schedule", "--no-check")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["campaign", "state", "send", "at", "list", "notes"]
    assert lines[1].split()[:5] == ["nov-news", "missed", "2026-11-28", "09:00", "MST"]
    assert "not sent within the grace period" in lines[1]
    assert lines[2].split()[:7] == [
        "dec-news",
        "scheduled",
        "2026-12-01",
        "09:00",
        "MST",
        "newsletter",
        "+events",
    ]


def test_unschedule_command(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    schedule_send(config, make_compiled("dec-news"), list_name="newsletter", at="2099-12-01 09:00")
    code, out, _ = run_cli(capsys, "unschedule", "dec-news")
    assert (code, out.strip()) == (0, "dec-news: unscheduled (was due 2099-12-01 09:00 MST)")
    code, _, err = run_cli(capsys, "unschedule", "dec-news")
    assert code == 1 and "dec-news is not scheduled" in err and "Traceback" not in err


def test_dispatch_is_silent_with_nothing_due(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule_send(config, make_compiled(), list_name="newsletter", at="2099-12-01 09:00")
    assert run_cli(capsys, "dispatch") == (0, "", "")


def test_dispatch_reports_a_missed_schedule_once_and_fails(config: Config) -> None:
    schedule_send(
        config,
        make_compiled(),
        list_name="newsletter",
        at="2026-12-01 09:00",
        now=datetime(2026, 11, 27, tzinfo=UTC),
    )
    late = datetime(2026, 12, 1, 16, 0, tzinfo=UTC) + timedelta(hours=6, minutes=1)
    lines: list[str] = []
    report = run_dispatch(config, now=late, log=lines.append)
    assert not report.ok
    assert [o.state for o in report.outcomes] == [State.MISSED]
    assert lines == [
        "2026-12-news: MISSED, not sent: it was due 2026-12-01 09:00 MST, 6.0 h ago, "
        "more than the 6 h grace "
        "period; schedule it again with `campaign send 2026-12-news --list newsletter --at ...`"
    ]
    again = run_dispatch(config, now=late + timedelta(minutes=1))
    assert again.ok and again.outcomes == []
    assert get_schedule(connect(config.database_url), "2026-12-news").state == State.MISSED


def test_grace_period_is_a_setting(config: Config) -> None:
    config = config.model_copy(
        update={"schedule": config.schedule.model_copy(update={"grace_hours": 0.5})}
    )
    schedule_send(
        config,
        make_compiled(),
        list_name="newsletter",
        at="2026-12-01 09:00",
        now=datetime(2026, 11, 27, tzinfo=UTC),
    )
    report = run_dispatch(config, now=datetime(2026, 12, 1, 16, 31, tzinfo=UTC))
    assert [o.state for o in report.outcomes] == [State.MISSED]


def test_dispatch_command_exits_1_on_a_missed_schedule(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    due = utcnow() - timedelta(hours=7)
    schedule_send(
        config, make_compiled(), list_name="newsletter", at=due, now=due - timedelta(days=1)
    )
    code, out, _ = run_cli(capsys, "dispatch")
    assert code == 1
    assert re.fullmatch(r"\S+ 2026-12-news: MISSED, not sent: .+\n", out)
    assert run_cli(capsys, "dispatch") == (0, "", "")  # reported once
