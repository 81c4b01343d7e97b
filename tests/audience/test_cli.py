"""The audience commands, run as `campaign ...` through `campaign.cli.main`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.config import load_config
from tests.conftest import run_cli


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return out


def test_sample_import_and_listing(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(
        capsys,
        "subscribers",
        "import",
        "samples/subscribers.csv",
        "--list",
        "newsletter",
        "--topic",
        "events",
    )
    assert "5 added, 0 updated, 0 unchanged" in out
    assert "0 added, 0 updated, 5 unchanged" in ok(
        capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter"
    )
    listing = ok(capsys, "subscribers", "list")
    assert "ana.lopez@example.org" in listing and "subscribed" in listing
    assert "newsletter" in ok(capsys, "lists") and "5" in ok(capsys, "lists")
    assert "events" in ok(capsys, "topics")
    shown = ok(capsys, "subscribers", "show", "ANA.LOPEZ@example.org")
    assert "López" in shown and "organisation" in shown and "import subscribers.csv" in shown
    assert (workspace / "campaign.db").exists()


def test_export_unsubscribe_delete(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")
    rows = list(
        csv.DictReader(io.StringIO(ok(capsys, "subscribers", "export", "--list", "newsletter")))
    )
    assert (
        len(rows) == 5 and rows[0]["email"] == "ana.lopez@example.org" and rows[0]["organisation"]
    )
    assert "unsubscribed from everything" in ok(
        capsys, "subscribers", "unsubscribe", "ben.okafor@example.net"
    )
    assert "erased" in ok(capsys, "subscribers", "delete", "emma.schmidt@example.org", "--yes")
    ok(capsys, "subscribers", "export", "--out", "out.csv")
    exported = (workspace / "out.csv").read_text(encoding="utf-8")
    assert "emma" not in exported and "ben.okafor@example.net" in exported
    store = Store.open(load_config(workspace))
    assert store.count_recipients("newsletter") == 3
    code, _, err = run_cli(capsys, "subscribers", "show", "emma.schmidt@example.org")
    assert code == 1 and "no subscriber" in err
    again = ok(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")
    assert "2 unsubscribed, bounced or complained, skipped" in again


def test_user_mistakes_end_without_traceback(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "bad.csv").write_bytes(b"email\nok@example.org\n\xff\xfe@example.org\n")
    code, _, err = run_cli(capsys, "subscribers", "import", "bad.csv", "--list", "newsletter")
    assert code == 1 and "bad.csv:3" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "subscribers", "import", "missing.csv", "--list", "newsletter")
    assert code == 1 and "missing.csv" in err
    code, _, err = run_cli(
        capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "n", "--resubscribe"
    )
    assert code == 1 and "--reason" in err
    code, _, err = run_cli(capsys, "subscribers", "list", "--list", "nope")
    assert code == 1 and "unknown list 'nope'" in err


def test_rich_markup_in_names_is_shown_as_text(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "odd.csv").write_text("email,name\nodd@example.org,[bold]Odd[/bold] <script>\n")
    ok(capsys, "subscribers", "import", "odd.csv", "--list", "newsletter")
    listing = ok(capsys, "subscribers", "list")
    assert "[bold]Odd[/bold]" in listing and "<script>" in listing


def test_cli_on_postgresql(
    workspace: Path,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", postgres_url)
    assert "5 added" in ok(
        capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter"
    )
    assert not (workspace / "campaign.db").exists()
    assert "newsletter" in ok(capsys, "lists")
