"""An address with an internationalised domain goes out in its ASCII form (punycode), through
the outbox (MIME) and Postmark (JSON), and everyone else is sent as usual."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.db import connect
from campaign.send import send_campaign
from tests.send.conftest import compiled, make_config
from tests.servers import serve
from tests.servers.postmark import PostmarkServer

PEOPLE = ["ana@example.org", "Juergen@Exämple.org", "bob@xn--bcher-kva.example"]
WIRE = {"ana@example.org", "juergen@xn--exmple-cua.org", "bob@xn--bcher-kva.example"}


@pytest.fixture
def postmark() -> Iterator[tuple[PostmarkServer, str]]:
    server = PostmarkServer()
    with serve(server.app) as url:
        yield server, url


def _subscribe(db_url: str) -> None:
    store = Store(connect(db_url))
    for address in PEOPLE:
        store.subscribe(address, list_name="news", source="test")


def test_outbox_writes_the_ascii_domain(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _subscribe(db_url)
    config = make_config(tmp_path / "ws", db_url)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.ok and summary.sent == 3
    to = set()
    for path in (tmp_path / "ws" / "outbox" / "c1").glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        to.add(parsed["To"].addresses[0].addr_spec)
    assert to == WIRE


def test_postmark_gets_the_ascii_domain(
    db_url: str, postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    _subscribe(db_url)
    config = make_config(tmp_path / "ws", db_url, provider="postmark", toml=f'base_url = "{url}"\n')
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.ok and summary.sent == 3
    assert set(server.deliveries()) == WIRE
