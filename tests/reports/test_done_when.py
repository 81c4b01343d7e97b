"""Issue 17's done-when: the example sent to 20 people through the local Postmark, then one
delivery, one hard bounce and one complaint posted as Postmark's webhooks, one one-click
unsubscribe, one forward and three clicks on two tracked links, all through a real
`campaign serve` on loopback. `campaign report --json` (a real process) gives exactly
those counts, and the preview's Reports tab shows the same numbers in Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from campaign.config import load_config
from campaign.db import connect
from campaign.send.ledger import deliveries
from campaign.web.app import create_app
from campaign.web.preview import create_preview_app
from tests.reports.conftest import (
    POSTMARK_AUTH,
    SLUG,
    basic,
    cli,
    csrf_of,
    headers_of,
    hrefs,
    postmark_workspace,
    tracked_hrefs,
)
from tests.servers import serve
from tests.servers.postmark import PostmarkServer

pytestmark = pytest.mark.browser


@pytest.fixture
def postmark() -> Iterator[tuple[PostmarkServer, str]]:
    fake = PostmarkServer(keep_payloads=True)
    with serve(fake.app) as url:
        yield fake, url


def webhook(http: httpx.Client, record: dict[str, Any]) -> None:
    answer = http.post(
        "/webhooks/postmark", json=record, headers={"Authorization": basic(POSTMARK_AUTH)}
    )
    assert answer.status_code == 200 and answer.json()["recorded"] == 1, answer.text


def test_report_counts_what_happened_in_the_cli_and_the_browser(
    workspace: Path, postmark: tuple[PostmarkServer, str], browser: Any
) -> None:
    fake, url = postmark
    postmark_workspace(workspace, url, people=20, track_clicks="aggregate")
    sent = cli(workspace, "send", SLUG, "--list", "newsletter", "--yes")
    assert sent.returncode == 0, sent.stderr
    messages = [m for batch in fake.payloads for m in batch]
    assert len(messages) == 20

    config = load_config(workspace)
    engine = connect(config.database_url)
    with engine.connect() as connection:
        rows = connection.execute(deliveries.select()).all()
    assert len(rows) == 20
    by_email = {row.email: row for row in rows}
    first, second, third, fourth, fifth = (messages[n] for n in range(5))

    with serve(create_app(config)) as site, httpx.Client(base_url=site) as http:
        row = by_email[first["To"].split("<")[-1].rstrip(">")]
        webhook(
            http,
            {
                "RecordType": "Delivery",
                "MessageID": row.provider_id,
                "Recipient": row.email,
                "DeliveredAt": "2026-11-30T10:00:00Z",
                "Metadata": {"send_id": row.send_id},
            },
        )
        row = by_email[second["To"].split("<")[-1].rstrip(">")]
        webhook(
            http,
            {
                "RecordType": "Bounce",
                "ID": 4323372036854775807,
                "Type": "HardBounce",
                "MessageID": row.provider_id,
                "Email": row.email,
                "Description": "The server was unable to deliver your message",
                "Metadata": {"send_id": row.send_id},
            },
        )
        row = by_email[third["To"].split("<")[-1].rstrip(">")]
        webhook(
            http,
            {
                "RecordType": "SpamComplaint",
                "ID": 42,
                "MessageID": row.provider_id,
                "Email": row.email,
                "Metadata": {"send_id": row.send_id},
            },
        )

        # One-click unsubscribe, as a mail client posts it to the List-Unsubscribe URL.
        unsubscribe = headers_of(fourth)["List-Unsubscribe"].split(",")[0].strip("<> ")
        answer = http.post(
            urlsplit(unsubscribe).path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200, answer.text

        # One forward, through the page the fifth recipient's forward link opens.
        forward = next(
            urlsplit(href).path for href in hrefs(fifth["HtmlBody"]) if "/forward/" in href
        )
        form = http.get(forward)
        assert form.status_code == 200
        answer = http.post(
            forward,
            data={"csrf": csrf_of(form.text), "friend": "friend@example.net", "name": "Fifth"},
        )
        assert answer.status_code == 200, answer.text
        assert len(fake.payloads[-1]) == 1  # the forward went out through Postmark too

        # Two tracked links, three clicks: each redirect leads to the campaign's own link.
        links = tracked_hrefs(first["HtmlBody"], config.public_base_url)
        targets = []
        for href in (links[0], links[0], links[1]):
            answer = http.get(urlsplit(href).path)
            assert answer.status_code == 302
            targets.append(answer.headers["location"])
        assert targets[0] == targets[1] != targets[2]
        assert "/r/" not in first["TextBody"]  # the plain-text part keeps readable URLs
        assert "https://www.fairfoodprogram.org/" in first["TextBody"]

    report = cli(workspace, "report", SLUG, "--json")
    assert report.returncode == 0, report.stderr
    got = json.loads(report.stdout)
    expected = {
        "recipients": 20,
        "sent": 20,
        "delivered": 1,
        "bounced": 1,
        "bounced_hard": 1,
        "bounced_soft": 0,
        "complained": 1,
        "unsubscribed": 1,
        "forwarded": 1,
        "failed": 0,
        "unknown": 0,
        "skipped": 0,
        "clicks": 3,
    }
    assert {key: got[key] for key in expected} == expected
    assert got["provider"] == "postmark" and got["list"] == "newsletter"
    assert [(link["url"], link["clicks"]) for link in got["links"]] == [
        (targets[0], 2),
        (targets[2], 1),
    ]
    assert got["rates"]["bounced"] == 5.0  # 1 of 20 sent

    preview = create_preview_app(config, None)
    try:
        with serve(preview) as preview_url:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(preview_url + "/")
            page.get_by_role("link", name="Reports").click()
            expect(page.locator(f'tr[data-slug="{SLUG}"]')).to_be_visible()
            page.locator(f'tr[data-slug="{SLUG}"] a').click()
            expect(page.locator("h1")).to_have_text(SLUG)
            for key in ("recipients", "sent", "delivered", "bounced", "complained"):
                expect(page.locator(f'dd[data-count="{key}"]')).to_have_text(str(expected[key]))
            for key in ("unsubscribed", "forwarded", "failed", "unknown", "skipped", "clicks"):
                expect(page.locator(f'dd[data-count="{key}"]')).to_have_text(str(expected[key]))
            bars = page.locator("svg.clicks rect.bar")
            expect(bars).to_have_count(2)
            assert [bars.nth(n).get_attribute("data-value") for n in range(2)] == ["2", "1"]
            day_one = page.locator('svg.timeline rect.bar[data-day="0"]')
            assert {
                day_one.nth(n).get_attribute("data-series"): day_one.nth(n).get_attribute(
                    "data-value"
                )
                for n in range(3)
            } == {"delivered": "1", "bounced": "1", "unsubscribed": "1"}
            context.close()
    finally:
        preview.state.preview.close()
