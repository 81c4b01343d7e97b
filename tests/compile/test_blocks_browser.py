"""A campaign using every kind of the block library, in Debian's Chromium with the built-in
layout: columns side by side at 600 px and stacked at 375 px, tables laid out as tables,
each button a link with its label. Asserted from element boxes, not from the HTML string."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.compile import build, write_output
from campaign.config import load_config
from tests.compile.test_blocks import SOCIAL
from tests.compile.test_browser import open_page
from tests.conftest import REPO, SECRET_KEY

pytestmark = pytest.mark.browser
BUTTONS = {
    "Join us": "https://example.org/join",
    "See the map": "https://example.org/map",
    "Volunteer": "https://example.org/volunteer",
    "Give": "https://example.org/give",
    "Donate now": "https://example.org/donate",
}


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """fixtures/every-kind built into a folder; yields (index.html, the public base URL)."""
    workspace = tmp_path_factory.mktemp("ws")
    (workspace / "campaign.toml").write_text((REPO / "campaign.toml").read_text() + SOCIAL)
    (workspace / ".env").write_text(f"CAMPAIGN_SECRET_KEY={SECRET_KEY}\n")
    shutil.copytree(Path(__file__).parent / "fixtures/every-kind", workspace / "campaigns/every")
    config = load_config(workspace)
    out = workspace / "site"
    write_output(build(config, "every"), out)
    yield out / "index.html", config.public_base_url


def column_boxes(page: Any) -> list[dict[str, float]]:
    boxes = [c.bounding_box() for c in page.query_selector_all(".section-columns .column")]
    assert len(boxes) == 3 and all(b and b["height"] > 20 for b in boxes), boxes
    return boxes


def test_columns_side_by_side_at_600px(browser: Any, every_kind: tuple[Path, str]) -> None:
    page = open_page(browser, every_kind, 600)
    boxes = column_boxes(page)
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert abs(left["y"] - right["y"]) < 2
        assert left["x"] + left["width"] <= right["x"] + 1
    assert boxes[-1]["x"] + boxes[-1]["width"] <= 601
    page.close()


def test_columns_stack_at_375px(browser: Any, every_kind: tuple[Path, str]) -> None:
    page = open_page(browser, every_kind, 375)
    boxes = column_boxes(page)
    for above, below in zip(boxes, boxes[1:], strict=False):
        assert above["y"] + above["height"] <= below["y"] + 1
        assert below["width"] > 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.close()


def test_tables_are_tables(browser: Any, every_kind: tuple[Path, str]) -> None:
    page = open_page(browser, every_kind, 600)
    tables = page.query_selector_all(".section-table .data-table table")
    assert len(tables) == 2
    for table, header, rows in ((tables[0], "Date", 3), (tables[1], "Month", 3)):
        assert table.evaluate("t => getComputedStyle(t).display") == "table"
        assert table.evaluate("t => t.rows.length") == rows
        cells = table.query_selector_all("tr:first-child > th")
        assert cells[0].inner_text().strip() == header
        boxes = [c.bounding_box() for c in cells]
        assert all(abs(b["y"] - boxes[0]["y"]) < 2 for b in boxes)
        assert all(
            a["x"] + a["width"] <= b["x"] + 1 for a, b in zip(boxes, boxes[1:], strict=False)
        )
    page.close()


def test_each_button_is_a_link_with_its_label(browser: Any, every_kind: tuple[Path, str]) -> None:
    page = open_page(browser, every_kind, 600)
    for label, url in BUTTONS.items():
        links = [
            a
            for a in page.query_selector_all(f'a[href="{url}"]')
            if a.inner_text().strip() == label
        ]
        assert len(links) == 1, label
        box = links[0].bounding_box()
        assert links[0].is_visible() and box and box["height"] >= 30 and box["width"] > 40, label
    page.close()
