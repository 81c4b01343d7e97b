"""Fixtures for `campaign serve`: a workspace config on each database backend, the app,
an in-process HTTP client, and a few subscribers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from campaign.audience import Store, Subscriber
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.links import Links
from campaign.web.app import create_app
from tests.conftest import SECRET_KEY

BASE_URL = "https://news.example.org"

WEBHOOK_ENV = {
    "POSTMARK_WEBHOOK_AUTH": "postmark:hook-password",
    "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key",
    "RESEND_WEBHOOK_SECRET": "whsec_" + "c2VjcmV0LWtleS1mb3ItcmVzZW5kLXRlc3Rz",
    "BREVO_WEBHOOK_TOKEN": "brevo-token",
    "MANDRILL_WEBHOOK_KEY": "mandrill-key",
    "SES_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:ses-events",
}


def make_config(workspace: Path, db_url: str, **env: str) -> Config:
    environ = {
        "CAMPAIGN_SECRET_KEY": SECRET_KEY,
        "CAMPAIGN_DATABASE_URL": db_url,
        **WEBHOOK_ENV,
        **env,
    }
    return load_config(workspace, environ=environ)


@pytest.fixture
def config(workspace: Path, db_url: str) -> Config:
    return make_config(workspace, db_url)


@pytest.fixture
def store(config: Config) -> Store:
    return Store(connect(config.database_url))


@pytest.fixture
def links(config: Config) -> Links:
    return Links(config.secret_key, config.public_base_url)


@pytest.fixture
def ana(store: Store) -> Subscriber:
    """A subscriber on two lists with one topic chosen."""
    store.ensure_topic("events")
    store.ensure_topic("research")
    store.subscribe(
        "ana@example.org",
        list_name="newsletter",
        source="test",
        first_name="Ana",
        topics=["events"],
    )
    return store.subscribe("ana@example.org", list_name="alerts", source="test")


@pytest.fixture
def app(config: Config) -> Starlette:
    return create_app(config)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http
    await app.state.site.aclose()


@pytest.fixture
def served(app: Starlette) -> Iterator[str]:
    """The app under uvicorn on a loopback port: its base URL."""
    from tests.servers import serve

    with serve(app) as url:
        yield url


SLUG = "2018-11-wsr-primer"


async def send_example(config: Config, store: Store) -> str:
    """Build the example campaign and send it through the outbox to "newsletter" (with Bob)."""
    from campaign.compile import build
    from campaign.send.engine import send_campaign

    store.subscribe("bob@example.org", list_name="newsletter", source="test", first_name="Bob")
    summary = await send_campaign(config, build(config, SLUG), list_name="newsletter")
    assert summary.sent == 2
    return SLUG


@pytest.fixture
async def sent(config: Config, store: Store, ana: Subscriber) -> str:
    """The example campaign, sent to Ana and Bob."""
    return await send_example(config, store)
