"""`campaign send --at` and `send_at:` schedule the real example campaign; `campaign schedule`
shows when its source changed since; `campaign dispatch` sends what was frozen."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.config import Config
from campaign.db import connect
from campaign.dispatch import run_dispatch
from campaign.schedule import frozen_compiled, get_schedule
from tests.conftest import run_cli

SLUG = "2018-11-wsr-primer"
YAML = Path("campaigns") / SLUG / "campaign.yaml"


@pytest.fixture
def sample_list(config: Config) -> Config:
    import_csv(Store.open(config), config.workspace / "samples" / "subscribers.csv", "newsletter")
    return config


def edit_yaml(config: Config, old: str, new: str) -> None:
    path = config.workspace / YAML
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_send_at_schedules_and_dispatch_sends_the_frozen_build(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sample_list
    code, out, err = run_cli(
        capsys, "send", SLUG, "--list", "newsletter", "--at", "2099-12-01 09:00"
    )
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{SLUG}: scheduled for 2099-12-01 09:00 MST to list 'newsletter'; "
        "`campaign dispatch` (cron) sends it"
    )
    assert "5 recipients on the list today" in out
    engine = connect(config.database_url)
    frozen = frozen_compiled(engine, SLUG)
    assert frozen.subject == "A Primer on Worker-Driven Social Responsibility"

    code, out, _ = run_cli(capsys, "schedule")
    assert code == 0 and "scheduled" in out and "source changed" not in out

    edit_yaml(config, "subject: A Primer", "subject: EDITED A Primer")
    code, out, _ = run_cli(capsys, "schedule")
    assert "source changed since scheduled: schedule again to send the new content" in out

    edit_yaml(config, "layout: newsletter", "layout: no-such-layout")
    code, out, _ = run_cli(capsys, "schedule")
    assert "source does not build:" in out and "no-such-layout" in out
    edit_yaml(config, "layout: no-such-layout", "layout: newsletter")

    # Dispatch sends what was frozen, not the edited subject.
    report = run_dispatch(config, now=datetime(2099, 12, 1, 16, 0, tzinfo=UTC))
    assert report.ok, report.outcomes
    sent = list((config.workspace / "outbox" / SLUG).glob("*.eml"))
    assert len(sent) == 5
    subjects = {email.message_from_bytes(p.read_bytes())["Subject"] for p in sent}
    assert subjects == {"A Primer on Worker-Driven Social Responsibility"}
    code, out, _ = run_cli(capsys, "schedule")
    assert "finished" in out and "5 sent, 0 failed, 0 unknown, 0 skipped" in out


def test_rescheduling_takes_the_new_content(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "send", SLUG, "--list", "newsletter", "--at", "2099-12-01 09:00")[0] == 0
    edit_yaml(sample_list, "subject: A Primer", "subject: EDITED A Primer")
    code, out, _ = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--at", "2099-12-02 09:00")
    assert code == 0 and out.startswith(f"{SLUG}: rescheduled for 2099-12-02 09:00 MST")
    assert (
        frozen_compiled(connect(sample_list.database_url), SLUG).subject
        == "EDITED A Primer on Worker-Driven Social Responsibility"
    )
    assert "source changed" not in run_cli(capsys, "schedule")[1]


def test_send_at_in_campaign_yaml(sample_list: Config, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(sample_list, "date: 2018-11-01", "date: 2018-11-01\nsend_at: 2099-03-08 02:30")
    code, out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter")
    assert code == 0, err
    assert out.splitlines()[0].startswith(
        f"{SLUG}: scheduled for 2099-03-08 03:30 MDT"
    )  # the DST gap rule
    assert "does not exist" in out
    schedule = get_schedule(connect(sample_list.database_url), SLUG)
    assert schedule.send_at == datetime(2099, 3, 8, 9, 30, tzinfo=UTC)


def test_send_at_in_the_past_is_a_clear_error(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_yaml(sample_list, "date: 2018-11-01", "date: 2018-11-01\nsend_at: 2018-11-06 09:00")
    code, out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter")
    assert code == 1 and "Traceback" not in err
    assert "send time 2018-11-06 09:00 MST is in the past" in err
    assert "send_at:" in err


def test_scheduling_checks_the_list_and_secrets_now(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "send", SLUG, "--list", "no-such-list", "--at", "2099-12-01 09:00"
    )
    assert code == 1 and "no-such-list" in err and "Traceback" not in err
    (sample_list.workspace / ".env").write_text("")
    code, _, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--at", "2099-12-01 09:00")
    assert code == 1 and "CAMPAIGN_SECRET_KEY" in err
    assert run_cli(capsys, "schedule", "--no-check")[1].strip() == "nothing scheduled"


def test_unreadable_at_is_a_clear_error(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--at", "tuesday 9am")
    assert code == 1 and "cannot read the time 'tuesday 9am'" in err and "Traceback" not in err


def test_sending_now_a_scheduled_campaign_asks_to_unschedule_first(
    sample_list: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "send", SLUG, "--list", "newsletter", "--at", "2099-12-01 09:00")[0] == 0
    code, _, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--yes")
    assert code == 1
    assert (
        f"{SLUG} is scheduled for 2099-12-01 09:00 MST; `campaign unschedule {SLUG}` first"
        in " ".join(err.split())
    )
    assert not (sample_list.workspace / "outbox" / SLUG).exists()
