"""A subscriber walks the pages in Debian's Chromium, following the links of the email
they received: unsubscribe, resubscribe, change topics, forward to two friends, read
the archive. The app runs under uvicorn on loopback; friends arrive in the outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from campaign.audience import Store, Subscriber
from campaign.config import Config
from tests.web.conftest import BASE_URL, SLUG, send_example

pytestmark = pytest.mark.browser


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the HTTP tests already run every page on both backends."""
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def sent(config: Config, store: Store, ana: Subscriber) -> str:
    """As conftest's `sent`, run in a thread of its own: the sync playwright API owns this
    thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, send_example(config, store)).result()


def links_in_email(workspace: Path, address: str, served: str) -> dict[str, str]:
    """The four links of the message `address` received, pointed at the local server."""
    for path in (workspace / "outbox" / SLUG).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address in str(message["To"]):
            html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
            found = dict(
                re.findall(
                    rf'href="{re.escape(BASE_URL)}/(archive|unsubscribe|preferences|forward)/([^"]+)"',
                    html,
                )
            )
            return {kind: f"{served}/{kind}/{token}" for kind, token in found.items()}
    raise AssertionError(f"no message to {address}")


def test_a_subscriber_walks_every_page(
    browser: Any,
    served: str,
    workspace: Path,
    store: Store,
    sent: str,
) -> None:
    links = links_in_email(workspace, "ana@example.org", served)
    assert set(links) == {"archive", "unsubscribe", "preferences", "forward"}
    context = browser.new_context()
    page = context.new_page()

    # Unsubscribe from this list through the page, then change one's mind.
    response = page.goto(links["unsubscribe"])
    assert response.status == 200
    assert page.get_by_role("heading").inner_text() == "Unsubscribe a•••@example.org?"
    assert page.get_by_label("only “newsletter”").is_checked()
    page.get_by_role("button", name="Unsubscribe").click()
    assert "you are unsubscribed from “newsletter”" in page.get_by_role("status").inner_text()
    assert store.subscriber_lists(_pid(store)) == {"alerts"}
    page.get_by_role("button", name="Resubscribe").click()
    assert "subscribed again" in page.get_by_role("status").inner_text()
    assert store.subscriber_lists(_pid(store)) == {"alerts", "newsletter"}

    # Change topics and name from the preferences page reached from there.
    page.get_by_role("link", name="choose which emails you get").click()
    assert page.get_by_role("heading").inner_text() == "Your preferences"
    page.get_by_label("events").uncheck()
    page.get_by_label("research").check()
    assert page.get_by_label("First name").input_value() == "Ana"
    page.get_by_label("First name").fill("Anita")
    page.get_by_label("Last name").fill("M.")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    found = store.find("ana@example.org")
    assert found is not None
    assert (found.topics, found.first_name, found.recipient().name) == (
        {"research"},
        "Anita",
        "Anita M.",
    )

    # Forward to two friends.
    page.goto(links["forward"])
    page.get_by_label("Friend 1", exact=True).fill("carla@example.net")
    page.get_by_label("Friend 2", exact=True).fill("dan@example.net")
    page.get_by_label("A note").fill("Thought of you. More at https://elsewhere.example")
    page.get_by_role("button", name="Send").click()
    assert "on its way to 2 friends" in page.get_by_role("status").inner_text()
    friends = {}
    for path in (workspace / "outbox" / SLUG).glob("fwd-*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        friends[str(message["To"])] = message.as_string()
    assert sorted(friends) == ["carla@example.net", "dan@example.net"]
    for raw in friends.values():
        assert "Thought of you. More at" in raw
        assert not any(
            token in raw
            for token in (
                links["unsubscribe"].rsplit("/", 1)[1],
                links["preferences"].rsplit("/", 1)[1],
                links["forward"].rsplit("/", 1)[1],
            )
        )
        assert "elsewhere.example" not in raw

    # The web copy, and the archive it belongs to.
    page.goto(links["archive"])
    assert "A Primer on Worker-Driven Social Responsibility" in page.title()
    assert page.get_by_text("unsubscribe from this list").count() == 1
    assert page.locator("a[href*='/unsubscribe/']").count() == 0
    page.goto(f"{served}/archive")
    page.get_by_role("link", name="A Primer on Worker-Driven Social Responsibility").click()
    assert page.url == links["archive"]

    # A damaged link: one plain 400 page.
    response = page.goto(links["unsubscribe"][:-4])
    assert response.status == 400
    assert page.get_by_role("heading").inner_text() == "This link does not work"
    assert context.cookies() == []
    context.close()


def _pid(store: Store) -> str:
    found = store.find("ana@example.org")
    assert found is not None
    return found.public_id
