"""Signing up in Debian's Chromium: the hosted form, then the snippet pasted on another
origin; the confirmation .eml in the outbox, its link opened (nothing changes) and
confirmed; only then is the person in a send's audience."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from campaign.audience import Store
from campaign.compile import build
from campaign.config import Config
from campaign.send import dry_run
from campaign.send.engine import send_campaign
from campaign.signup.snippet import form_snippet
from tests.web.conftest import BASE_URL, SLUG
from tests.web.test_signup import confirm_path, confirmations, signup_config

pytestmark = pytest.mark.browser


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the HTTP tests run every step on both backends."""
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def config(workspace: Path, db_url: str) -> Config:
    return signup_config(workspace, db_url)


def in_thread(function: Any, *args: Any) -> Any:
    """Run `function` in a thread of its own: playwright's sync API owns this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def audience(config: Config) -> int:
    """How many the next send of the example would reach (a dry run builds every message)."""
    return int(
        in_thread(lambda: dry_run(config, build(config, SLUG), list_name="newsletter").recipients)
    )


def test_sign_up_confirm_and_receive_the_next_send(
    browser: Any, served: str, config: Config, store: Store, workspace: Path
) -> None:
    page = browser.new_context().new_page()
    assert page.goto(f"{served}/subscribe/newsletter").status == 200
    assert page.get_by_role("heading").inner_text() == "Subscribe to newsletter"
    page.get_by_label("Email address").fill("carla@example.org")
    page.get_by_label("Name (optional)").fill("Carla Ruiz")
    page.get_by_label("Your city").fill("Pueblo")
    page.get_by_label("events").check()
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading").inner_text() == "Check your inbox"

    [message] = confirmations(workspace)
    assert message["To"] == "Carla Ruiz <carla@example.org>"
    link = served + confirm_path(message)
    assert audience(config) == 0

    page.goto(link)  # a person (or a link scanner) opens it: nothing changes yet
    assert page.get_by_role("heading").inner_text() == "Confirm your subscription"
    assert store.find("carla@example.org") is None and audience(config) == 0
    page.get_by_role("button", name="Confirm my subscription").click()
    assert page.get_by_role("heading").inner_text() == "Subscription confirmed"
    assert audience(config) == 1

    summary = in_thread(
        asyncio.run, send_campaign(config, build(config, SLUG), list_name="newsletter")
    )
    assert summary.sent == 1
    [sent] = (workspace / "outbox" / SLUG).glob("*.eml")
    assert "carla@example.org" in sent.read_text()


def test_the_snippet_on_another_origin(
    browser: Any, served: str, config: Config, store: Store, workspace: Path
) -> None:
    from tests.servers import serve

    snippet = form_snippet(config.model_copy(update={"public_base_url": served}), "newsletter")
    assert re.search(rf'action="{re.escape(served)}/subscribe/newsletter"', snippet)
    assert BASE_URL not in snippet

    async def home(_: Any) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>Our site</title><h1>Join us</h1>{snippet}")

    with serve(Starlette(routes=[Route("/", home)])) as other:
        assert other != served
        page = browser.new_context().new_page()
        page.goto(other)
        page.get_by_label("Email address").fill("dan@example.org")
        page.get_by_role("button", name="Subscribe").click()
        assert page.url == f"{served}/subscribe/newsletter"
        assert page.get_by_role("heading").inner_text() == "Check your inbox"
    [message] = confirmations(workspace)
    assert message["To"] == "dan@example.org"
    page.goto(served + confirm_path(message))
    page.get_by_role("button", name="Confirm my subscription").click()
    assert [r.email for r in store.recipients("newsletter")] == ["dan@example.org"]
