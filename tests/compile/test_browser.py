"""The example newsletter in Debian's Chromium: every part of the seed shows at 600 px,
and each news photo sits beside its text at 600 px and above it at 375 px.

Asserted from element boxes in the rendered page, not from the HTML string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.compile import build, write_output
from campaign.config import load_config

pytestmark = pytest.mark.browser

SEED = Path(__file__).parent / "seed-newsletter.txt"
"""The Mailchimp issue the example reproduces (a copy of /work/shared/seed-newsletter.txt)."""
ALT_TEXTS = {
    "Video clip showing a few steps (not all) in a supply chain.",
    "Photograph of computers.",
    "Photograph of bedroom.",
    "Photo of the Nobel Peace Prize.",
    "Photo of scrabble pieces that spell Facebook.",
    "Newsletter Footer Image",
}
NOT_OURS = {"Email Marketing Powered by Mailchimp"}
SEED_TYPOS = {"November 16th from 9:00 11:00 a.m.": "November 16th from 9:00 – 11:00 a.m."}
"""The seed's text export lost this dash; the example has it back."""
SECTIONS = (
    ".top-links",
    ".banner",
    ".section-spotlight",
    ".section-news",
    ".section-events",
    ".section-notice",
    ".footer",
)


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The example built into a folder; yields (index.html, the public base URL)."""
    root = Path(__file__).resolve().parents[2]
    config = load_config(root)
    out = tmp_path_factory.mktemp("site")
    write_output(build(config, "2018-11-wsr-primer"), out)
    yield out / "index.html", config.public_base_url


def open_page(browser: Any, example: tuple[Path, str], width: int) -> Any:
    """The page at `width` px, its images served from the build's assets/, nothing from the network."""
    index, base_url = example
    page = browser.new_page(viewport={"width": width, "height": 900})

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(f"{base_url}/assets/"):
            request_route.fulfill(path=str(index.parent / "assets" / url.rsplit("/", 1)[1]))
        elif url.startswith("file:"):
            request_route.continue_()
        else:
            request_route.abort()

    page.route("**/*", route)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    return page


def news_boxes(page: Any) -> list[tuple[dict[str, float], dict[str, float]]]:
    """(photo box, text box) of each news item."""
    items = page.query_selector_all(".news-item")
    boxes = []
    for item in items:
        photo = item.query_selector(".news-photo img").bounding_box()
        text = item.query_selector(".news-text").bounding_box()
        assert photo and text and photo["height"] > 20 and text["height"] > 20
        boxes.append((photo, text))
    return boxes


def test_every_part_of_the_seed_shows_at_600px(browser: Any, example: tuple[Path, str]) -> None:
    page = open_page(browser, example, 600)
    for selector in SECTIONS:
        element = page.query_selector(selector)
        assert element is not None and element.is_visible(), selector
        box = element.bounding_box()
        assert box and box["height"] > 10 and box["x"] >= 0 and box["x"] + box["width"] <= 601, (
            selector,
            box,
        )
    shown = squash(page.inner_text("body"))
    alts = {img.get_attribute("alt") for img in page.query_selector_all("img")}
    for line in filter(None, map(squash, SEED.read_text(encoding="utf-8").splitlines())):
        if line in NOT_OURS:
            continue
        if line in ALT_TEXTS:
            assert line in alts, line
        else:
            assert SEED_TYPOS.get(line, line) in shown, line
    page.close()


def test_news_photo_beside_text_at_600px(browser: Any, example: tuple[Path, str]) -> None:
    page = open_page(browser, example, 600)
    boxes = news_boxes(page)
    assert len(boxes) == 4
    for photo, text in boxes:
        assert photo["x"] + photo["width"] <= text["x"]
        assert photo["y"] < text["y"] + text["height"] and text["y"] < photo["y"] + photo["height"]
    page.close()


def test_news_photo_above_text_at_375px(browser: Any, example: tuple[Path, str]) -> None:
    page = open_page(browser, example, 375)
    boxes = news_boxes(page)
    assert len(boxes) == 4
    for photo, text in boxes:
        assert photo["y"] + photo["height"] <= text["y"]
        assert photo["width"] > 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.close()
