"""VERP: through the smtp provider with `verp = true` (a real SMTP server on loopback), each
message leaves with its own signed return path; a bounce to that address that quotes
nothing of the original still names its delivery, and a forged token names none."""

from __future__ import annotations

from pathlib import Path

import pytest
from itsdangerous import Signer

from campaign.db import connect
from campaign.links import Links
from campaign.mailbox.reports import Reader, Unreadable
from campaign.send.engine import send_campaign
from tests.conftest import SECRET_KEY
from tests.mailbox.conftest import SAMPLES
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
    # An MTA that folds the return path's case still delivers a bounce that names its delivery.
    for folded in (senders["user1@example.com"].lower(), senders["user1@example.com"].upper()):
        [event] = reader.events(bounce_to(folded, "user1@example.com"))
        assert (event.kind, event.email) == ("bounced", "user1@example.com")
    local, domain = senders["user1@example.com"].split("@")
    assert len(local) <= 64  # RFC 5321's limit on a local part
    head, signature = local.rsplit("-", 1)
    altered = ("b" if signature[0] == "a" else "a") + signature[1:]
    forged = f"{head}-{altered}@{domain}"
    with pytest.raises(Unreadable, match="names no delivery"):
        reader.events(bounce_to(forged, "user1@example.com"))
    # A return path issued before (itsdangerous, base64) still counts, as given or folded.
    send_id = head.rpartition("+")[2]
    old = f"bounces+{Signer(SECRET_KEY, salt='campaign.verp').sign(send_id).decode()}@{domain}"
    for issued in (old, old.lower()):
        [event] = reader.events(bounce_to(issued, "user1@example.com"))
        assert event.email == "user1@example.com"
    old_head, old_signature = old.split("@")[0].rsplit(".", 1)
    forged_old = f"{old_head}.{'B' if old_signature[0] == 'A' else 'A'}{old_signature[1:]}@{domain}"
    with pytest.raises(Unreadable, match="names no delivery"):
        reader.events(bounce_to(forged_old, "user1@example.com"))
