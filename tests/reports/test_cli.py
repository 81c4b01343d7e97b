"""`campaign report`, `reports` and `status` for scripts: exit codes and --json; `lists`,
`topics`, `schedule` and `subscribers list` in JSON too. In-process, through the outbox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from campaign.config import load_config
from campaign.db import connect
from campaign.send.ledger import deliveries
from campaign.web.webhooks import Event, record
from tests.conftest import run_cli
from tests.reports.conftest import SLUG

OTHER = "2018-12-other"


@pytest.fixture
def sent(workspace: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The example sent through the outbox to the five sample subscribers."""
    assert (
        run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")[
            0
        ]
        == 0
    )
    assert run_cli(capsys, "send", SLUG, "--list", "newsletter", "--yes")[0] == 0
    return workspace


def test_unknown_campaigns_exit_1_naming_those_that_exist(
    sent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("status", "report"):
        code, out, err = run_cli(capsys, command, "2018-11-wsr-primr")
        assert code == 1 and out == ""
        assert "no campaign '2018-11-wsr-primr'" in err and SLUG in err


def test_status_tells_not_sent_from_no_such_campaign(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "campaigns" / OTHER).mkdir()
    (workspace / "campaigns" / OTHER / "campaign.yaml").write_text("subject: x\nlayout: plain\n")
    code, out, _ = run_cli(capsys, "status", OTHER)
    assert code == 0 and out.strip() == f"{OTHER}: not sent yet"
    code, out, _ = run_cli(capsys, "status", OTHER, "--json")
    assert code == 0 and json.loads(out) == {"campaign": OTHER, "status": "not sent"}
    code, _, err = run_cli(capsys, "report", OTHER)
    assert code == 1 and "not sent yet" in err


def test_status_shows_what_the_service_reported_since(
    sent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = connect(load_config(sent).database_url)
    with engine.connect() as connection:
        row = connection.execute(deliveries.select().limit(1)).one()
    bounce = Event("postmark", "b1", "bounced", row.email, hard=True, send_id=row.send_id)
    assert record(engine, [bounce]).recorded == 1
    code, out, _ = run_cli(capsys, "status", SLUG)
    assert code == 0
    assert "since sent: 0 delivered, 1 bounced (1 hard, 0 soft), 0 complained" in out


def test_status_exits_2_while_failed_or_unknown_wait(
    sent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "status", SLUG, "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["recipients"], data["sent"], data["failed"], data["unknown"]) == (5, 5, 0, 0)
    engine = connect(load_config(sent).database_url)
    for status in ("unknown", "failed"):
        with engine.begin() as connection:
            first = connection.execute(deliveries.select().limit(1)).first()
            assert first is not None
            connection.execute(
                update(deliveries)
                .where(deliveries.c.send_id == first.send_id)
                .values(status=status, reason="mailbox full")
            )
        code, out, _ = run_cli(capsys, "status", SLUG)
        assert code == 2, status
        assert f"1 {status}" in out


def test_report_and_reports(sent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "report", SLUG)
    assert code == 0
    assert "provider:     outbox" in out and "sent:         5" in out
    assert "to:           newsletter" in out
    code, out, _ = run_cli(capsys, "report", f"campaigns/{SLUG}/", "--json")
    data = json.loads(out)
    keys = ("recipients", "sent", "delivered", "bounced", "complained", "unsubscribed")
    keys += ("forwarded", "failed", "unknown", "skipped")
    assert {k: data[k] for k in keys} == dict.fromkeys(keys, 0) | {"recipients": 5, "sent": 5}
    assert data["clicks"] is None and data["opened"] is None  # tracking is off by default
    code, out, _ = run_cli(capsys, "reports")
    assert code == 0 and f"{SLUG}  finished: 5/5 sent" in out
    code, out, _ = run_cli(capsys, "reports", "--json")
    assert [r["campaign"] for r in json.loads(out)] == [SLUG]


def test_listings_in_json(sent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "lists", "--json")
    assert code == 0 and json.loads(out) == [{"name": "newsletter", "mailable": 5}]
    code, out, _ = run_cli(capsys, "topics", "--add", "events", "--json")
    assert code == 0 and json.loads(out) == [{"name": "events", "mailable": 0}]
    code, out, _ = run_cli(capsys, "subscribers", "list", "--json", "--limit", "2")
    people = json.loads(out)
    assert code == 0 and len(people) == 2
    assert {"email", "public_id", "status", "lists", "topics"} <= set(people[0])
    assert people[0]["lists"] == ["newsletter"]
    code, out, _ = run_cli(capsys, "schedule", "--json")
    assert code == 0 and json.loads(out) == []
    shutil.copytree(sent / "campaigns" / SLUG, sent / "campaigns" / "2030-01-later")
    code, _, err = run_cli(
        capsys, "send", "2030-01-later", "--list", "newsletter", "--at", "2030-01-01 09:00"
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "schedule", "--json", "--no-check")
    [scheduled] = json.loads(out)
    assert scheduled["campaign"] == "2030-01-later" and scheduled["state"] == "scheduled"
    assert scheduled["send_at"].startswith("2030-01-01T") and scheduled["list_name"] == "newsletter"
