"""`campaign mailbox` over POP3 against the real dovecot (the IMAP tests' mailbox, read over
POP3S, then POP3 with STLS): a DSN, a bounce quoting a newsletter's long HTML line and an ARF
report each applied once and deleted; a human reply and a message that cannot be read left
in the mailbox and reported as over IMAP; a message seen again after a crash counts once.
A wrong password or an untrusted certificate is one clear line, and a password beyond ASCII
logs in, over either protocol."""

from __future__ import annotations

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

REPLY = (
    b"From: friend@example.net\r\nTo: bounces@news.example.org\r\nSubject: Thanks!\r\n\r\nHi\r\n"
)
UNREADABLE = (  # its subject is in a charset Python does not know
    b"From: someone@example.net\r\nTo: bounces@news.example.org\r\n"
    b"Subject: =?x-unknown?q?unsubscribe_me?=\r\n\r\nPlease\r\n"
)


def left_lines(out: str) -> list[str]:
    return sorted(line for line in out.splitlines() if line.startswith("left "))


async def test_pop3_applies_each_event_once_and_deletes_only_what_it_applied(
    tmp_path: Path, db_url: str, pop3: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populate(db_url, tmp_path, 4)
    root = workspace(tmp_path / "ws", db_url, pop3, "tls", protocol="pop3")
    await send_campaign(load_config(root), compiled("c1"), list_name="news")
    with connect(db_url).connect() as connection:
        send_ids = dict(connection.execute(select(deliveries.c.email, deliveries.c.send_id)).all())
    # A bounce that quotes the original whole: an HTML newsletter on one 3,600-byte line.
    long_line = b"\r\n<p>" + b"Hello " * 600 + b"</p>\r\n"
    quoting = sample("qmail-bounce.eml", "user3@example.com", send_ids["user3@example.com"])
    deliver(
        pop3,
        sample("postfix-dsn.eml", "user0@example.com", send_ids["user0@example.com"]),
        sample("arf-abuse.eml", "user1@example.com", send_ids["user1@example.com"]),
        quoting.replace(b"\r\nHello\r\n", long_line),
        REPLY,
        UNREADABLE,
    )

    code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 0, err
    assert "5 messages: 3 events recorded, 0 already recorded, 2 left in the mailbox" in out
    left = left_lines(out)
    assert left == [
        'left "=?x-unknown?q?unsubscribe_me?=" from someone@example.net: '
        "unknown encoding: x-unknown",
        'left "Thanks!" from friend@example.net: not a bounce, a feedback report or an '
        "unsubscribe request",
    ]
    expected = {
        "user0@example.com": "bounced",
        "user1@example.com": "complained",
        "user2@example.com": "subscribed",
        "user3@example.com": "bounced",
    }
    assert {e: store.find(e).status for e in expected} == expected  # type: ignore[union-attr]
    # Deleted, not moved: POP3 has no folders.
    assert folder(pop3, "INBOX") == ["Thanks!", "unsubscribe me"]
    assert folder(pop3, "Processed") == []
    history = {e: len(store.history(e)) for e in expected}

    # Again, over STLS: the two left are still there and still reported; nothing changes.
    workspace(root, db_url, pop3, "starttls", protocol="pop3")
    code, out, _err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 0 and "2 messages: 0 events recorded, 0 already recorded, 2 left" in out
    assert left_lines(out) == left
    assert {e: len(store.history(e)) for e in expected} == history

    # A bounce seen again (a run killed after recording, before QUIT) counts once, then goes.
    deliver(pop3, sample("postfix-dsn.eml", "user0@example.com", send_ids["user0@example.com"]))
    code, out, _err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert "3 messages: 0 events recorded, 1 already recorded, 2 left" in out
    assert {e: len(store.history(e)) for e in expected} == history
    assert folder(pop3, "INBOX") == ["Thanks!", "unsubscribe me"]

    # The same mailbox over IMAP leaves and reports the same two, in the same words.
    workspace(root, db_url, pop3, "tls")
    code, out, _err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert "2 messages: 0 events recorded, 0 already recorded, 2 left" in out
    assert left_lines(out) == left


def test_a_wrong_password_or_an_untrusted_certificate_is_one_clear_line(
    tmp_path: Path, pop3: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    db_url, root = f"sqlite:///{tmp_path}/c.db", tmp_path / "ws"
    for protocol in ("pop3", "imap"):
        for security in ("tls", "starttls"):
            # Beyond ASCII over STARTTLS, where IMAP then logs in by SASL PLAIN.
            wrong = "hunter2-wrong" if security == "tls" else "hunter2-wröng"
            workspace(root, db_url, pop3, security, protocol=protocol, password=wrong)
            port = load_config(root).mailbox.effective_port  # type: ignore[union-attr]
            where = f"the mailbox at {protocol} 127.0.0.1:{port}"
            code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
            assert code == 1 and "Authentication failed." in err, err
            assert f"{where} refused: {'-ERR [AUTH]' if protocol == 'pop3' else '[AUTH'}" in err
            assert "hunter2" not in out + err and "Traceback" not in err

            # Without the ca_file, the self-signed certificate is refused before any login.
            workspace(root, db_url, pop3, security, protocol=protocol, trusted=False)
            code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
            assert code == 1 and f"could not reach {where}" in err
            assert "CERTIFICATE_VERIFY_FAILED" in err and "Traceback" not in err


@pytest.mark.parametrize("pop3", [{"password": "grüße-€-passwort"}], indirect=True, ids=["utf-8"])
def test_a_password_beyond_ascii_logs_in(
    tmp_path: Path, pop3: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mailbox passwords are UTF-8 (RFC 4616); imaplib's LOGIN would only send ASCII."""
    for protocol in ("pop3", "imap"):
        root = workspace(
            tmp_path / "ws", f"sqlite:///{tmp_path}/c.db", pop3, "tls", protocol=protocol
        )
        code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
        assert (code, out, err) == (0, "", ""), protocol
