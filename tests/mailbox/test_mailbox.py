"""`campaign mailbox` against a real dovecot on loopback: a DSN, a non-standard bounce, an
ARF report and a mailto unsubscribe, each applied once; a human reply left and reported;
a second run (over STARTTLS) changes nothing; a message seen again after a crash counts once."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.config import load_config
from campaign.db import connect
from campaign.send.engine import send_campaign
from campaign.send.ledger import deliveries
from tests.conftest import run_cli
from tests.mailbox.conftest import deliver, folder, sample, workspace
from tests.send.conftest import compiled, populate
from tests.servers.dovecot import Dovecot


async def test_bounces_complaints_and_unsubscribes_by_mail_apply_once(
    tmp_path: Path,
    db_url: str,
    imap: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = populate(db_url, tmp_path, 5)
    root = workspace(tmp_path / "ws", db_url, imap, "tls")
    config = load_config(root)
    await send_campaign(config, compiled("c1"), list_name="news")
    with connect(db_url).connect() as connection:
        send_ids = dict(connection.execute(select(deliveries.c.email, deliveries.c.send_id)).all())
    # The unsubscribe token a mail client puts in the subject, from the mailto the outbox wrote.
    written = (root / "outbox" / "c1" / f"{send_ids['user2@example.com']}.eml").read_bytes()
    header = email.message_from_bytes(written, policy=email.policy.default)["List-Unsubscribe"]
    mailto_subject = re.search(r"subject=unsubscribe%20([\w.-]+)>", str(header))
    assert mailto_subject is not None
    deliver(
        imap,
        sample("postfix-dsn.eml", "user0@example.com", send_ids["user0@example.com"]),
        sample("qmail-bounce.eml", "user3@example.com", send_ids["user3@example.com"]),
        sample("arf-abuse.eml", "user1@example.com", send_ids["user1@example.com"]),
        (
            "From: user2@example.com\r\nTo: unsubscribe@news.example.org\r\n"
            f"Subject: unsubscribe {mailto_subject.group(1)}\r\n\r\n\r\n"
        ).encode(),
        b"From: friend@example.net\r\nTo: bounces@news.example.org\r\nSubject: Thanks!\r\n\r\nHi\r\n",
    )

    code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 0, err
    assert "5 messages: 4 events recorded, 0 already recorded, 1 left in the mailbox" in out
    assert 'left "Thanks!" from friend@example.net: not a bounce' in out
    expected = {
        "user0@example.com": "bounced",
        "user1@example.com": "complained",
        "user2@example.com": "unsubscribed",
        "user3@example.com": "bounced",
        "user4@example.com": "subscribed",
    }
    assert {e: store.find(e).status for e in expected} == expected  # type: ignore[union-attr]
    assert folder(imap, "INBOX") == ["Thanks!"]
    assert len(folder(imap, "Processed")) == 4
    with connect(db_url).connect() as connection:
        events = dict(connection.execute(select(deliveries.c.email, deliveries.c.event)).all())
    assert events["user0@example.com"] == "bounced" and events["user1@example.com"] == "complained"
    history = {e: len(store.history(e)) for e in expected}

    # Again, over STARTTLS: the human reply is still there and still reported; nothing changes.
    workspace(root, db_url, imap, "starttls")
    code, out, _err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 0 and "1 messages: 0 events recorded, 0 already recorded, 1 left" in out
    assert {e: len(store.history(e)) for e in expected} == history

    # A bounce seen again (a run killed after recording, before moving it) counts once.
    deliver(imap, sample("postfix-dsn.eml", "user0@example.com", send_ids["user0@example.com"]))
    code, out, _err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert "2 messages: 0 events recorded, 1 already recorded, 1 left" in out
    assert {e: len(store.history(e)) for e in expected} == history
    assert folder(imap, "INBOX") == ["Thanks!"]

    second = await send_campaign(config, compiled("c2"), list_name="news")
    assert second.total == 1  # only user4 is still mailable
