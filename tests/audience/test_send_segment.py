"""Segments end to end: `campaign send --where/--segment` on both databases; the count shown
before sending, the ledger and schedule keep the condition, dispatch sends to the same segment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.dispatch import run_dispatch
from campaign.schedule import get_schedule
from campaign.send.ledger import get_send
from tests.conftest import run_cli

SLUG = "2018-11-wsr-primer"
NET = "email contains '.net'"
"""Ben and David of the sample list."""


@pytest.fixture
def config(workspace: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", db_url)
    with (workspace / "campaign.toml").open("a") as toml:
        toml.write(f'\n[segments]\nnet = "{NET}"\ndenver = "organisation contains \'Denver\'"\n')
    config = load_config(workspace)
    import_csv(Store.open(config), workspace / "samples" / "subscribers.csv", "newsletter")
    return config


def _outbox(config: Config) -> list[str]:
    return sorted(
        p.read_text().split("To: ", 1)[1].split("\n", 1)[0]
        for p in (config.workspace / "outbox" / SLUG).glob("*.eml")
    )


def test_where_sends_to_the_matching_members_only(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--where", NET, "--dry-run")
    assert code == 0, err
    assert f"to: list newsletter, where {NET}" in out and "2 messages built" in out
    code, out, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--where", NET, "--yes")
    assert code == 0, err
    assert f"to:       list newsletter, where {NET}, 2 recipients" in out
    assert len(_outbox(config)) == 2
    assert all(".net" in to for to in _outbox(config))
    send = get_send(connect(config.database_url), SLUG)
    assert send is not None and send.segment == NET
    # Resuming to another audience is refused: the ledger knows the condition.
    code, _, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--yes")
    assert code == 1 and f"where {NET}" in err


def test_saved_segment_and_its_errors(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--segment", "denver", "-y")
    assert code == 0, err
    assert "segment denver (organisation contains 'Denver'), 1 recipients" in out
    code, _, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--segment", "nope", "-y")
    assert code == 1 and "no saved segment 'nope' (saved segments: denver, net)" in err
    code, _, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--where", "city = ", "-y")
    assert code == 1 and "--where:" in err and "(column 8)" in err and "Traceback" not in err


def test_a_saved_segment_that_does_not_parse_is_an_error_at_its_line(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = config.workspace / "campaign.toml"
    text = toml.read_text()
    toml.write_text(text + "broken = \"city == 'x'\"\n")
    line = len(text.splitlines()) + 1
    code, _, err = run_cli(capsys, "send", SLUG, "-l", "newsletter", "--dry-run")
    assert code == 1 and f"campaign.toml:{line}:" in err and "[segments] broken" in err


def test_a_schedule_keeps_the_segment_for_dispatch(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "send", SLUG, "-l", "newsletter", "--segment", "net", "--at", "2099-12-01 09:00"
    )
    assert code == 0, err
    assert f"where {NET}" in out and "2 recipients" in out
    engine = connect(config.database_url)
    assert get_schedule(engine, SLUG).segment == NET
    assert f"newsletter where {NET}" in run_cli(capsys, "schedule", "--no-check")[1]
    # Editing the saved segment later does not change who the scheduled send goes to.
    toml = config.workspace / "campaign.toml"
    toml.write_text(toml.read_text().replace(NET, "email contains '@'"))
    said: list[str] = []
    report = run_dispatch(
        load_config(config.workspace), now=datetime(2099, 12, 1, 16, tzinfo=UTC), log=said.append
    )
    assert any(f"where {NET}" in line for line in said), said
    assert report.ok, report.outcomes
    assert _outbox(config) == [
        "Ben Okafor <ben.okafor@example.net>",
        "David Reyes <david.reyes@example.net>",
    ]
    send = get_send(engine, SLUG)
    assert send is not None and send.segment == NET


def test_mailchimp_holds_its_own_audience(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILCHIMP_API_KEY", "0123456789abcdef-us6")
    toml = config.workspace / "campaign.toml"
    toml.write_text(
        toml.read_text().replace('name = "outbox"', 'name = "mailchimp"\naudience_id = "abc123"')
    )
    code, _, err = run_cli(capsys, "send", SLUG, "--where", NET, "--yes")
    assert code == 1 and "Mailchimp holds its audience" in err
