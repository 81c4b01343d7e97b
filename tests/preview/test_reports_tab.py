"""The preview's Reports tab without a browser: empty before any send (and no database made),
a report for a send, a 404 page for a campaign never sent; charts are SVG with their numbers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from campaign.reports import Day, Link
from campaign.web.preview.charts import clicks, timeline
from tests.conftest import run_cli
from tests.preview.conftest import EXAMPLE


def test_reports_tab_before_anything_was_sent(preview_url: str, workspace: Path) -> None:
    page = httpx.get(preview_url + "/reports")
    assert page.status_code == 200
    assert 'href="/reports" aria-current="page"' in page.text
    assert "Nothing sent yet" in page.text
    missing = httpx.get(f"{preview_url}/reports/{EXAMPLE}")
    assert missing.status_code == 404 and "has not been sent" in missing.text
    assert not (workspace / "campaign.db").exists()  # the preview never creates the database


def test_reports_tab_shows_a_send(
    workspace: Path, capsys: pytest.CaptureFixture[str], preview_url: str
) -> None:
    assert (
        run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")[
            0
        ]
        == 0
    )
    assert run_cli(capsys, "send", EXAMPLE, "--list", "newsletter", "--yes")[0] == 0
    assert f'href="/reports/{EXAMPLE}">report</a>' in httpx.get(preview_url + "/").text
    index = httpx.get(preview_url + "/reports")
    assert f'href="/reports/{EXAMPLE}"' in index.text and "5 / 5" in index.text
    page = httpx.get(f"{preview_url}/reports/{EXAMPLE}")
    assert page.status_code == 200
    assert '<dd data-count="sent">5</dd>' in page.text
    assert "through outbox" in page.text
    assert "Click tracking was off for this send" in page.text
    assert "<script" not in page.text.split("</head>", 1)[1]  # readable without JavaScript


def test_charts_are_svg_with_their_numbers_as_text() -> None:
    drawn = timeline([Day(0, 3, 1, 0), *(Day(n, 0, 0, 0) for n in range(1, 7))])
    assert drawn.startswith("<svg") and drawn.count('class="bar"') == 21
    assert 'data-series="delivered" data-value="3"' in drawn and ">day 7<" in drawn
    link = Link('https://example.org/?a=1&b="2"', 4, None)
    drawn = clicks([link])
    assert "https://example.org/?a=1&amp;b=&quot;2&quot;" in drawn and ">4</text>" in drawn
