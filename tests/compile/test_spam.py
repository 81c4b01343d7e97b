"""The example as sent scores as ham in SpamAssassin: nothing in the built-in layout that
filters flag (the hidden preheader once cost +0.7, HTML_FONT_LOW_CONTRAST).

Debian's `spamassassin`, offline (-L: local tests only); scripts/test installs it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli, unavailable

SLUG = "2018-11-wsr-primer"


def test_example_scores_at_most_0_1(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        unavailable("spamassassin is not installed (apt-get install spamassassin)")
        return
    code, _, err = run_cli(capsys, "send", SLUG, "--test", "reader@example.com")
    assert code == 0, err
    (eml,) = (workspace / "outbox" / SLUG).glob("*.eml")
    checked = subprocess.run(
        [spamassassin, "-L", "-t"],
        input=eml.read_bytes(),
        capture_output=True,
        timeout=300,
        check=True,
    )
    report = checked.stdout.decode("utf-8", "replace")
    status = re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)", report)
    assert status, report[-2000:]
    details = report[report.find("Content analysis details") :]
    assert float(status.group(1)) <= 0.1, details
    assert "HTML_FONT_LOW_CONTRAST" not in report
