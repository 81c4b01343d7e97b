"""A long import shows its progress: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from campaign.audience import Store
from campaign.audience.importer import CHUNK, import_csv
from campaign.cli import progress
from campaign.cli.progress import Steps
from campaign.db import connect


def test_import_reports_each_chunk_written(tmp_path: Path) -> None:
    rows = CHUNK * 2 + 5
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{i}@example.org\n" for i in range(rows)))
    seen: list[tuple[int, int]] = []
    store = Store(connect(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    report = import_csv(
        store, path, "news", on_progress=lambda done, total: seen.append((done, total))
    )
    assert report.added == rows
    assert seen == [(CHUNK, rows), (CHUNK * 2, rows), (rows, rows)]


def test_plain_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    out = io.StringIO()
    steps = Steps("importing people.csv", Console(file=out, force_terminal=False))
    steps(1000, 3000)
    steps(3000, 3000)  # the report that follows says the end
    steps.stop()
    assert out.getvalue() == "importing people.csv: 1,000/3,000\n"


def test_a_bar_on_a_terminal() -> None:
    out = io.StringIO()
    steps = Steps("importing people.csv", Console(file=out, force_terminal=True, width=100))
    assert steps.bar is not None
    steps(1000, 3000)
    steps.bar.refresh()
    steps.stop()
    assert "importing people.csv" in out.getvalue() and "1000/3000" in out.getvalue()
