"""The preview in Debian's Chromium: both widths, live reload, errors, tabs, dark mode, test sends.

Every wait is playwright's `expect`, which polls until its deadline; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.preview.conftest import EXAMPLE

pytestmark = pytest.mark.browser

DEADLINE_MS = 10_000


@pytest.fixture
def page(browser: Any, preview_url: str) -> Iterator[Page]:
    """A wide browser tab (both iframes side by side); closed before the server stops.
    A script error in the preview's own pages fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(DEADLINE_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors


def open_campaign(page: Page, preview_url: str) -> None:
    page.goto(f"{preview_url}/campaigns/{EXAMPLE}")
    expect(page.locator("#live.on")).to_be_visible()  # the live-reload stream is connected
    for frame in ("#desktop", "#mobile"):
        expect(page.frame_locator(frame).locator(".news-item .news-photo").first).to_be_visible()


def boxes(page: Page, frame: str) -> tuple[dict[str, float], dict[str, float]]:
    """The boxes of the first news item's photo column and text column inside `frame`."""
    item = page.frame_locator(frame).locator(".news-item").first
    photo, text = (
        item.locator(".news-photo").bounding_box(),
        item.locator(".news-text").bounding_box(),
    )
    assert photo and text
    return photo, text


def test_index_lists_the_example_and_opens_it(page: Page, preview_url: str) -> None:
    page.goto(preview_url + "/")
    row = page.locator(f'tr[data-slug="{EXAMPLE}"]')
    expect(row).to_contain_text("A Primer on Worker-Driven Social Responsibility")
    expect(row).to_contain_text("newsletter")
    row.get_by_role("link", name=EXAMPLE).click()
    expect(page).to_have_url(f"{preview_url}/campaigns/{EXAMPLE}")
    expect(page.locator("h1.subject")).to_have_text(
        "A Primer on Worker-Driven Social Responsibility"
    )


def test_email_renders_at_desktop_and_phone_widths(page: Page, preview_url: str) -> None:
    open_campaign(page, preview_url)
    desktop = page.frame_locator("#desktop").locator("html")
    mobile = page.frame_locator("#mobile").locator("html")
    assert desktop.evaluate("e => e.clientWidth") >= 600
    assert mobile.evaluate("e => e.clientWidth") == 375

    photo, text = boxes(page, "#desktop")
    assert photo["x"] + photo["width"] <= text["x"] + 1, "photo beside its text at desktop width"
    assert photo["y"] < text["y"] + text["height"] and text["y"] < photo["y"] + photo["height"]

    photo, text = boxes(page, "#mobile")
    assert photo["y"] + photo["height"] <= text["y"] + 1, "photo above its text at phone width"
    assert abs(photo["x"] - text["x"]) < 30

    for frame in ("#desktop", "#mobile"):  # every image came from the preview server
        images = page.frame_locator(frame).locator("img")
        assert images.count() >= 4
        assert images.evaluate_all("all => all.every(i => i.complete && i.naturalWidth > 0)")


def test_saving_markdown_updates_the_open_page(
    page: Page, preview_url: str, workspace: Path
) -> None:
    open_campaign(page, preview_url)
    sentence = "Edited on disk while the preview was open."
    expect(page.frame_locator("#desktop").locator("body")).not_to_contain_text(sentence)
    spotlight = workspace / "campaigns" / EXAMPLE / "spotlight.md"
    spotlight.write_text(spotlight.read_text() + f"\n{sentence}\n")
    expect(page.frame_locator("#desktop").locator("body")).to_contain_text(sentence)
    expect(page.frame_locator("#mobile").locator("body")).to_contain_text(sentence)
    expect(page.locator("#text")).to_contain_text(sentence)


def test_broken_campaign_yaml_shows_its_error_and_recovers(
    page: Page, preview_url: str, workspace: Path
) -> None:
    open_campaign(page, preview_url)
    path = workspace / "campaigns" / EXAMPLE / "campaign.yaml"
    good = path.read_text()
    path.write_text(good.replace("layout: newsletter", "layout: [newsletter"))
    errors = page.locator("#build-errors")
    expect(errors).to_contain_text(f"campaigns/{EXAMPLE}/campaign.yaml:")
    expect(errors).to_contain_text("YAML syntax error")
    expect(page.locator("#live.on")).to_be_visible()  # the server carries on

    path.write_text(good)
    expect(errors).to_have_count(0)
    expect(page.locator("#built-at")).to_be_visible()
    expect(page.frame_locator("#desktop").locator(".news-item").first).to_be_visible()


def test_text_tab_shows_the_plain_text_part(page: Page, preview_url: str) -> None:
    open_campaign(page, preview_url)
    text = page.locator("#text")
    expect(text).to_be_hidden()
    page.get_by_role("tab", name="Plain text").click()
    expect(text).to_be_visible()
    expect(page.locator("#tab-email")).to_be_hidden()
    expect(text).to_contain_text("A Primer on Worker-Driven Social Responsibility")
    expect(text).to_contain_text(f"{preview_url}/preview-pages/unsubscribe/")
    assert "<td" not in text.inner_text()
    page.get_by_role("tab", name="HTML source").click()
    expect(page.locator("#source")).to_contain_text("<!doctype html>")
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator("#headers")).to_contain_text("List-Unsubscribe-Post")


def test_dark_mode_toggle_applies_the_emails_dark_styles(page: Page, preview_url: str) -> None:
    open_campaign(page, preview_url)
    body = page.frame_locator("#desktop").locator(".email-body").first
    light = body.evaluate("e => getComputedStyle(e).backgroundColor")
    page.locator("#dark").check()
    expect(body).to_have_css("background-color", "rgb(22, 24, 29)")
    assert light != "rgb(22, 24, 29)"
    page.reload()  # the choice survives a reload
    expect(page.locator("#dark")).to_be_checked()
    expect(page.frame_locator("#mobile").locator(".email-body").first).to_have_css(
        "background-color", "rgb(22, 24, 29)"
    )


def test_send_test_form_sends_through_the_outbox(
    page: Page, preview_url: str, workspace: Path
) -> None:
    open_campaign(page, preview_url)
    page.locator("input[name=addresses]").fill("editor@example.org, not-an-address")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#send-result")).to_contain_text("'not-an-address' is not an email address")
    assert not (workspace / "outbox").exists()

    page.locator("input[name=addresses]").fill("editor@example.org")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#send-result")).to_contain_text(
        "Sent a test to editor@example.org through outbox"
    )
    sent = list((workspace / "outbox").rglob("*.eml"))
    assert len(sent) == 1
    message = BytesParser(policy=policy.default).parse(sent[0].open("rb"))
    assert message["To"] == "editor@example.org"
    assert message["Subject"].startswith("[TEST] ")
