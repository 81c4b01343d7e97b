"""Merge fields on the public site: the preferences page edits first and last name so the
greeting follows; the archive copy shows each field's fallback."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from campaign.audience import Store, Subscriber
from campaign.compile import build
from campaign.config import Config
from campaign.links import Links
from campaign.send.engine import send_campaign
from tests.compile.test_merge_fields import write_greeting
from tests.web.test_pages import csrf_of


async def send_greeting(config: Config) -> list[EmailMessage]:
    slug = write_greeting(config.workspace)
    summary = await send_campaign(config, build(config, slug), list_name="newsletter")
    assert summary.sent >= 1
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted((config.workspace / "outbox" / slug).glob("*.eml"))
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_preferences_edit_first_and_last_name_and_the_greeting_follows(
    client: httpx.AsyncClient, config: Config, store: Store, ana: Subscriber, links: Links
) -> None:
    url = f"/preferences/{links.token('preferences', ana.public_id, 'greeting')}"
    page = await client.get(url)
    assert 'name="first_name" value="Ana"' in page.text
    assert 'name="last_name" value=""' in page.text
    saved = await client.post(
        url,
        data={
            "csrf": csrf_of(page.text),
            "first_name": " Anita\r\nBcc: x@evil.example ",
            "last_name": "López",
            "list": ["newsletter"],
        },
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert 'name="first_name" value="Anita Bcc: x@evil.example"' in saved.text
    (message,) = await send_greeting(config)
    assert message["To"] == '"Anita Bcc: x@evil.example López" <ana@example.org>'
    assert message["Subject"] == "Anita Bcc: x@evil.example, your digest 🎉"
    assert "Bcc" not in message.keys()
    assert "Dear Anita Bcc: x@evil.example," in text_of(message)


async def test_a_name_alone_is_offered_as_first_and_last(
    client: httpx.AsyncClient, store: Store, links: Links
) -> None:
    joe = store.subscribe("joe@example.org", list_name="newsletter", source="t", name="Joe Bloggs")
    url = f"/preferences/{links.token('preferences', joe.public_id, 'greeting')}"
    page = await client.get(url)
    assert 'name="first_name" value="Joe"' in page.text
    assert 'name="last_name" value="Bloggs"' in page.text
    saved = await client.post(
        url, data={"csrf": csrf_of(page.text), "first_name": "Joe", "last_name": "Bloggs"}
    )
    assert saved.status_code == 200
    after = store.find("joe@example.org")
    assert after is not None and (after.name, after.first_name) == ("Joe Bloggs", "")  # unchanged


async def test_the_archive_copy_shows_each_fields_fallback(
    client: httpx.AsyncClient, config: Config, store: Store, ana: Subscriber, workspace: Path
) -> None:
    (message,) = await send_greeting(config)
    assert message["Subject"] == "Ana, your digest 🎉"  # the recipient got her own
    index = await client.get("/archive")
    assert "Friend, your digest 🎉" in index.text and "Hello friend" in index.text
    copy = await client.get("/archive/greeting")
    assert copy.status_code == 200
    assert "Dear friend," in copy.text and "From &lt;somewhere&gt;: news." in copy.text
    assert "Friend, your digest 🎉" in copy.text  # the title
    assert "{{{" not in copy.text and "Ana" not in copy.text
    feed = await client.get("/archive/feed.atom")
    assert "<title>Friend, your digest 🎉</title>" in feed.text
