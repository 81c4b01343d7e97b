"""VERP: through the smtp provider with `verp = true` (a real SMTP server on loopback), each
message leaves with its own signed return path; a bounce to that address that quotes
nothing of the original still names its delivery, and a forged token names none."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.db import connect
from campaign.links import Links
from campaign.mailbox.reports import Reader, Unreadable
from campaign.send.engine import send_campaign
from tests.conftest import SECRET_KEY
from tests.mailbox.test_mailbox import SAMPLES
from tests.providers.test_smtp import Recorder
from tests.send.conftest import compiled, make_config, populate
from tests.send.test_smtp_bounces import smtp_server  # noqa: F401  (the loopback SMTP server)


def bounce_to(return_path: str, email_address: str) -> bytes:
    """The Postfix DSN, sent to `return_path`, without the quoted original headers."""
    text = (SAMPLES / "postfix-dsn.eml").read_text().format(email=email_address, send_id="")
    text = text.split(
        "--4Xk2Lm0Zt9z9vQ.1732957205/mail.news.example.org\nContent-Description: Undelivered"
    )[0]
    text = text.replace("To: bounces@news.example.org", f"To: {return_path}")
    text = text.replace("Delivered-To: bounces@news.example.org", f"Delivered-To: {return_path}")
    return text.replace("\n", "\r\n").encode()


async def test_a_bounce_to_the_signed_return_path_names_its_delivery(
    tmp_path: Path,
    smtp_server: tuple[Recorder, int],  # noqa: F811
) -> None:
    handler, port = smtp_server
    db_url = f"sqlite:///{tmp_path}/campaign.db"
    populate(db_url, tmp_path, 2)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="smtp",
        toml=f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'return_path = "bounces@news.example.org"\nverp = true\n',
    )
    await send_campaign(config, compiled("c1"), list_name="news")
    senders = {rcpt[0]: mail_from for mail_from, rcpt, _data in handler.received}
    assert len(set(senders.values())) == 2
    assert all(
        s.startswith("bounces+") and s.endswith("@news.example.org") for s in senders.values()
    )

    engine = connect(db_url)
    reader = Reader(engine, Links(SECRET_KEY, config.public_base_url), SECRET_KEY)
    [event] = reader.events(bounce_to(senders["user1@example.com"], "user1@example.com"))
    assert (event.kind, event.hard, event.email) == ("bounced", True, "user1@example.com")
    delayed = bounce_to(senders["user0@example.com"], "user0@example.com").replace(
        b"Action: failed\r\nStatus: 5.1.1", b"Action: delayed\r\nStatus: 4.2.2"
    )
    [soft] = reader.events(delayed)
    assert (soft.kind, soft.hard, soft.email) == ("bounced", False, "user0@example.com")
    local, domain = senders["user1@example.com"].split("@")
    # The signature's first character altered (its last may hold only base64 padding bits).
    head, signature = local.rsplit(".", 1)
    altered = ("B" if signature[0] == "A" else "A") + signature[1:]
    forged = f"{head}.{altered}@{domain}"
    with pytest.raises(Unreadable, match="names no delivery"):
        reader.events(bounce_to(forged, "user1@example.com"))
