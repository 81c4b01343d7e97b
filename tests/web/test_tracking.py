"""Click and open tracking on `campaign serve`: off by default; a tracked link leads only to
a link of its own campaign; "aggregate" keeps no one's identity; "per-subscriber" does."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from campaign.activity import link_clickers, link_clicks
from campaign.audience import Store
from campaign.clicks import Click, Tracker, tracked_links
from campaign.config import Config
from campaign.db import connect, metadata
from campaign.reports import report
from campaign.send.ledger import get_send
from campaign.web.app import create_app
from tests.conftest import SECRET_KEY
from tests.web.conftest import BASE_URL, SLUG, make_config, send_example


def tracking(workspace: Path, db_url: str, **settings: str | bool) -> Config:
    """The workspace's config with `settings` added to campaign.toml."""
    toml = workspace / "campaign.toml"
    lines = "".join(
        f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}\n"
        for key, value in settings.items()
    )
    toml.write_text(lines.replace("'", '"') + toml.read_text())
    return make_config(workspace, db_url)


@pytest.fixture
async def tracked(workspace: Path, db_url: str) -> AsyncIterator[tuple[Config, httpx.AsyncClient]]:
    """The example sent to Ana and Bob with aggregate click tracking, and a client of the site."""
    config = tracking(workspace, db_url, track_clicks="aggregate")
    store = Store(connect(config.database_url))
    store.subscribe("ana@example.org", list_name="newsletter", source="test")
    await send_example(config, store)
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield config, http
    await app.state.site.aclose()


def sent_messages(workspace: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted((workspace / "outbox" / SLUG).glob("*.eml"))
    ]


def part(message: email.message.EmailMessage, kind: str) -> str:
    found = message.get_body(preferencelist=(kind,))
    assert found is not None
    return str(found.get_content())


def snapshot(config: Config) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table."""
    engine = connect(config.database_url)
    with engine.connect() as connection:
        return {
            table.name: {
                tuple(
                    json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v for v in row
                )
                for row in connection.execute(select(table))
            }
            for table in metadata.sorted_tables
        }


async def test_a_tracked_link_leads_only_to_a_link_of_its_campaign(
    tracked: tuple[Config, httpx.AsyncClient],
) -> None:
    config, http = tracked
    send = get_send(connect(config.database_url), SLUG)
    assert send is not None
    links = tracked_links(send.compiled.html, config.public_base_url)
    tracker = Tracker(SECRET_KEY, config.public_base_url)

    def path(click: Click) -> str:
        return urlsplit(tracker.click_url(click)).path

    answer = await http.get(path(Click(SLUG, 1, False)))
    assert answer.status_code == 302 and answer.headers["location"] == links[1]
    assert answer.headers["cache-control"] == "no-store"

    serializer = URLSafeSerializer(SECRET_KEY, salt="campaign.click")
    refused = [
        path(Click(SLUG, len(links), False)),  # no such link in the campaign
        path(Click(SLUG, -1, False)),
        path(Click("2018-12-other", 0, False)),  # a campaign never sent
        "/r/" + serializer.dumps([SLUG, "https://evil.example/", 0]),  # a URL, not a number
        "/r/" + serializer.dumps(["https://evil.example/", 0, 0]),
        "/r/" + URLSafeSerializer("another key", salt="campaign.click").dumps([SLUG, 0, 0]),
        path(Click(SLUG, 0, False))[:-2] + "xx",  # altered
        "/r/" + URLSafeSerializer(SECRET_KEY, salt="campaign.link.unsubscribe").dumps([SLUG, 0]),
    ]
    for url in refused:
        answer = await http.get(url, params={"url": "https://evil.example/"})
        assert answer.status_code == 404, url
        assert "location" not in answer.headers
    assert not config.public_base_url.startswith("https://evil")


async def test_aggregate_keeps_no_one_who_clicked(
    tracked: tuple[Config, httpx.AsyncClient], workspace: Path
) -> None:
    config, http = tracked
    store = Store(connect(config.database_url))
    people = [store.find(a) for a in ("ana@example.org", "bob@example.org")]
    messages = sent_messages(workspace)
    assert len(messages) == 2
    html = part(messages[0], "html")
    clicks = [h for h in re.findall(r'href="([^"]+)"', html) if "/r/" in h]
    assert len(set(clicks)) == len(tracked_links(get_html(config), config.public_base_url))
    assert "/r/" not in part(messages[0], "plain")
    assert "/o/" not in html  # no open-tracking image unless track_opens asks for it
    unsubscribe = str(messages[0]["List-Unsubscribe"]).split(",")[0].strip("<> ")

    before = snapshot(config)
    for href in (clicks[0], clicks[0], clicks[3]):
        # Even with a genuine subscriber token appended, an aggregate link records no one.
        answer = await http.get(urlsplit(href).path, params={"s": unsubscribe})
        assert answer.status_code == 302
    after = snapshot(config)

    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"link_clicks"}
    # The one table written has no column that could name a person...
    assert [c.name for c in link_clicks.c] == ["id", "send", "link", "url", "clicks"]
    for row in after["link_clicks"] - before["link_clicks"]:  # ...and no value that does.
        for person in people:
            assert person is not None
            assert not any(
                person.public_id in str(value) or person.email in str(value) for value in row
            )
    assert after["link_clickers"] == set()
    found = report(connect(config.database_url), SLUG)
    assert found is not None and found.clicks == 3
    assert [(link.clicks, link.clickers) for link in found.links] == [(2, None), (1, None)]


def get_html(config: Config) -> str:
    send = get_send(connect(config.database_url), SLUG)
    assert send is not None
    return send.compiled.html


async def test_per_subscriber_records_who_clicked(workspace: Path, db_url: str) -> None:
    config = tracking(workspace, db_url, track_clicks="per-subscriber")
    store = Store(connect(config.database_url))
    ana = store.subscribe("ana@example.org", list_name="newsletter", source="test")
    await send_example(config, store)
    message = next(m for m in sent_messages(workspace) if "ana@" in str(m["To"]))
    href = next(h for h in re.findall(r'href="([^"]+)"', part(message, "html")) if "/r/" in h)
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        path = urlsplit(href.replace("&amp;", "&"))
        answer = await http.get(f"{path.path}?{path.query}")
    await app.state.site.aclose()
    assert answer.status_code == 302
    engine = connect(config.database_url)
    with engine.connect() as connection:
        who = connection.execute(select(link_clickers.c.subscriber)).scalars().all()
        counted = connection.execute(select(link_clicks.c.clicks)).scalars().all()
    assert who == [ana.public_id] and counted == [1]
    found = report(engine, SLUG)
    assert found is not None and [link.clickers for link in found.links] == [1]


async def test_opens_only_when_asked_and_the_report_says_why_they_mislead(
    workspace: Path, db_url: str
) -> None:
    config = tracking(workspace, db_url, track_opens=True)
    store = Store(connect(config.database_url))
    store.subscribe("ana@example.org", list_name="newsletter", source="test")
    await send_example(config, store)
    html = part(sent_messages(workspace)[0], "html")
    assert "/r/" not in html  # clicks stay off
    pixel = re.search(r'<img src="([^"]+/o/[^"]+)"', html)
    assert pixel is not None
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        answer = await http.get(urlsplit(pixel.group(1)).path)
        forged = await http.get("/o/" + URLSafeSerializer("x", salt="campaign.open").dumps(SLUG))
    await app.state.site.aclose()
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert forged.status_code == 404
    found = report(connect(config.database_url), SLUG)
    assert found is not None and found.opened == 1 and found.clicks is None
    assert "Apple Mail Privacy Protection" in found.as_json()["opens_caveat"]
