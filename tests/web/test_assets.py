"""`GET /assets/<name>`: the images of sent campaigns, from the database only."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from campaign.audience import Store
from campaign.compile import build
from campaign.config import Config
from campaign.db import connect
from campaign.web.app import create_app
from tests.web.conftest import BASE_URL, SLUG, make_config


def html_of(eml: Path) -> str:
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def image_urls(html: str) -> list[str]:
    return sorted(set(re.findall(r'src="(https://news\.example\.org/assets/[^"]+)"', html)))


async def test_every_image_of_a_sent_campaign_is_served_from_another_host(
    config: Config, store: Store, sent: str, tmp_path: Path
) -> None:
    """A second app instance, in another workspace that shares only the database,
    answers every image of the sent emails and of the archive page."""
    elsewhere = tmp_path / "web-host"
    elsewhere.mkdir()
    shutil.copy(config.workspace / "campaign.toml", elsewhere / "campaign.toml")
    shutil.rmtree(config.workspace / "campaigns")  # the images exist nowhere but in the database
    app = create_app(make_config(elsewhere, config.database_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        archive = await http.get(f"/archive/{sent}")
        emails = sorted((config.workspace / "outbox").rglob("*.eml"))
        urls = image_urls(archive.text)
        assert urls and emails
        assert image_urls(html_of(emails[0])) == urls
        for url in urls:
            response = await http.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"] == "image/png"
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.content.startswith(b"\x89PNG")
        assert (await http.get("/assets/banner.000000000000.png")).status_code == 404
        assert (await http.get("/assets/..%2Fcampaign.toml")).status_code == 404
    await app.state.site.aclose()


async def test_an_image_used_twice_is_stored_once(config: Config) -> None:
    from campaign.assets import assets, store_assets

    compiled = build(config, SLUG)
    engine = connect(config.database_url)
    assert store_assets(engine, compiled) == len(compiled.assets) > 0
    assert store_assets(engine, compiled) == 0
    with engine.connect() as connection:
        assert connection.execute(assets.select()).all().__len__() == len(compiled.assets)


async def test_an_image_changed_since_the_build_stops_the_send(config: Config) -> None:
    from campaign.errors import UserError
    from campaign.send.engine import send_campaign

    compiled = build(config, SLUG)
    own = next(a for a in compiled.assets if Path(a.path).is_relative_to(config.workspace))
    Path(own.path).write_bytes(b"changed")
    with pytest.raises(UserError, match="changed or vanished since the build: build again"):
        await send_campaign(config, compiled, list_name="newsletter")


async def test_a_schedule_stores_the_images_before_its_send(config: Config) -> None:
    """A dispatcher on another host sends the frozen build: its images are stored already."""
    from datetime import UTC, datetime, timedelta

    from campaign.assets import stored_names
    from campaign.schedule import schedule_send

    compiled = build(config, SLUG)
    schedule_send(
        config, compiled, list_name="newsletter", at=datetime.now(UTC) + timedelta(days=1)
    )
    engine = connect(config.database_url)
    assert stored_names(engine, (a.name for a in compiled.assets)) == {
        a.name for a in compiled.assets
    }
