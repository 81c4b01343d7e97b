"""Send times: the workspace's zone, explicit offsets and zones, and daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from campaign.schedule import ScheduleError, resolve_time

DENVER = ZoneInfo("America/Denver")


def test_bare_time_is_in_the_workspace_zone() -> None:
    resolved = resolve_time("2026-12-01 09:00", DENVER)
    assert resolved.at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert resolved.note is None


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2026-12-01T09:00", datetime(2026, 12, 1, 16, 0, tzinfo=UTC)),
        ("2026-12-01 09:00:30", datetime(2026, 12, 1, 16, 0, 30, tzinfo=UTC)),
        ("2026-12-01 09:00Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00+02:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01 09:00 +02:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01 09:00 -0500", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
        ("2026-12-01 09:00 Europe/Berlin", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("2026-07-01 09:00 Europe/Berlin", datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01 09:00 UTC", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
    ],
)
def test_a_zone_or_offset_in_the_value_wins(value: str, utc: datetime) -> None:
    assert resolve_time(value, DENVER).at == utc


def test_summer_time_in_the_workspace_zone() -> None:
    assert resolve_time("2026-07-01 09:00", DENVER).at == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)


def test_aware_datetime_kept_naive_datetime_localised() -> None:
    aware = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert resolve_time(aware, DENVER).at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert resolve_time(datetime(2026, 12, 1, 9, 0), DENVER).at == datetime(
        2026, 12, 1, 16, 0, tzinfo=UTC
    )


def test_nonexistent_time_moves_forward_by_the_gap() -> None:
    # 2026-03-08: Denver's clocks jump from 02:00 MST to 03:00 MDT; 02:30 never happens.
    resolved = resolve_time("2026-03-08 02:30", DENVER)
    assert resolved.at == datetime(2026, 3, 8, 9, 30, tzinfo=UTC)
    assert resolved.local.strftime("%H:%M %Z") == "03:30 MDT"
    assert resolved.note is not None
    assert "does not exist" in resolved.note and "03:30 MDT" in resolved.note


def test_repeated_time_is_the_first_occurrence() -> None:
    # 2026-11-01: Denver's clocks fall back from 02:00 MDT to 01:00 MST; 01:30 happens twice.
    resolved = resolve_time("2026-11-01 01:30", DENVER)
    assert resolved.at == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)  # 01:30 MDT, not 08:30 (MST)
    assert resolved.local.strftime("%H:%M %Z") == "01:30 MDT"
    assert resolved.note is not None and "occurs twice" in resolved.note


def test_times_next_to_the_transitions_are_plain() -> None:
    assert resolve_time("2026-03-08 01:59", DENVER).note is None
    assert resolve_time("2026-03-08 03:00", DENVER).at == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
    assert resolve_time("2026-11-01 02:00", DENVER).at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def test_dst_rules_follow_the_zone_of_the_value() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29, whatever the workspace's zone is.
    resolved = resolve_time("2026-03-29 02:30 Europe/Berlin", DENVER)
    assert resolved.at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert resolved.note is not None and "Europe/Berlin" in resolved.note


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("next tuesday", "cannot read the time"),
        ("2026-13-01 09:00", "cannot read the time"),
        ("2026-12-01 09:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("2026-12-01 09:00+01:00 Europe/Berlin", "both an offset and a zone"),
    ],
)
def test_unreadable_times_are_clear_errors(value: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        resolve_time(value, DENVER)


def test_send_at_from_yaml_in_a_gap_gets_the_same_rule_and_a_note() -> None:
    # The compiler attaches the workspace zone to a bare `send_at:` (fold=0): same rule, and a note.
    resolved = resolve_time(datetime(2026, 3, 8, 2, 30, tzinfo=DENVER), DENVER)
    assert resolved.at == datetime(2026, 3, 8, 9, 30, tzinfo=UTC)
    assert resolved.note is not None and "03:30 MDT" in resolved.note
