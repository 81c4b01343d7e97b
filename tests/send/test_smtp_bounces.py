"""An SMTP server refusing a recipient for good is a hard bounce: through the smtp provider
to a real SMTP server on loopback (aiosmtpd), that person is suppressed at once and left
out of the next send, as a webhook's hard bounce would leave them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from campaign.audience import Store
from campaign.config import Config
from campaign.send.engine import send_campaign
from tests.providers.test_smtp import Recorder
from tests.send.conftest import compiled, make_config, populate
from tests.servers import free_port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    handler, port = Recorder(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_config(tmp_path: Path, db_url: str, port: int) -> Config:
    return make_config(
        tmp_path / "ws",
        db_url,
        provider="smtp",
        toml=f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\nlocal_hostname = "mx.example.org"\n',
    )


async def test_a_550_for_one_recipient_bounces_them_out_of_the_next_send(
    tmp_path: Path, db_url: str, smtp_server: tuple[Recorder, int]
) -> None:
    handler, port = smtp_server
    store: Store = populate(db_url, tmp_path, 3)
    handler.rcpt_replies["user1@example.com"] = "550 5.1.1 <user1@example.com>: User unknown"
    config = smtp_config(tmp_path, db_url, port)

    first = await send_campaign(config, compiled("c1"), list_name="news")
    assert (first.sent, first.bounced, first.failed) == (2, 1, 0)
    assert first.ok
    found = store.find("user1@example.com")
    assert found is not None and (found.status, found.suppressed) == ("bounced", "bounced")
    bounces = [e for e in store.history("user1@example.com") if e["kind"] == "bounce_hard"]
    assert [e["source"] for e in bounces] == ["smtp:reply"]

    handler.received.clear()
    second = await send_campaign(config, compiled("c2"), list_name="news")
    assert (second.sent, second.bounced, second.total) == (2, 0, 2)
    assert sorted(rcpt for _, tos, _ in handler.received for rcpt in tos) == [
        "user0@example.com",
        "user2@example.com",
    ]
