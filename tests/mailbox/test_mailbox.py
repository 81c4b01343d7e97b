"""`campaign mailbox` against a real dovecot on loopback: a DSN, a non-standard bounce, an
ARF report and a mailto unsubscribe, each applied once; a human reply left and reported;
a second run (over STARTTLS) changes nothing; a message seen again after a crash counts once."""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.config import load_config
from campaign.db import connect
from campaign.send.engine import send_campaign
from campaign.send.ledger import deliveries
from tests.conftest import SECRET_KEY, run_cli, unavailable
from tests.providers import test_smtp
from tests.send.conftest import compiled, make_config, populate
from tests.servers.dovecot import Dovecot, available, dovecot

SAMPLES = Path(__file__).parent / "samples"
certificate = test_smtp.certificate


@pytest.fixture
def imap(certificate: tuple[Path, Path]) -> Iterator[Dovecot]:
    if not available():
        unavailable("dovecot is not installed (apt-get install dovecot-imapd)")
    with dovecot(*certificate) as server:
        yield server


def connect_imap(server: Dovecot) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context()
    context.load_verify_locations(str(server.ca_file))
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=context)
    client.login(server.username, server.password)
    return client


def deliver(server: Dovecot, *messages: bytes) -> None:
    client = connect_imap(server)
    for raw in messages:
        assert client.append("INBOX", None, None, raw)[0] == "OK"
    client.logout()


def folder(server: Dovecot, name: str) -> list[str]:
    """The subjects of the messages in `name`."""
    client = connect_imap(server)
    status, _ = client.select(f'"{name}"', readonly=True)
    subjects = []
    if status == "OK":
        _, data = client.search(None, "ALL")
        for number in data[0].split():
            _, fetched = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            header = email.message_from_bytes(fetched[0][1], policy=email.policy.default)
            subjects.append(str(header["Subject"]))
    client.logout()
    return sorted(subjects)


def workspace(root: Path, db_url: str, server: Dovecot, security: str) -> Path:
    port = server.imaps_port if security == "tls" else server.imap_port
    make_config(
        root,
        db_url,
        toml=(
            '[send]\nunsubscribe_mailto = "unsubscribe@news.example.org"\n'
            f'[mailbox]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
            f'ca_file = "{server.ca_file}"\nprocessed_folder = "Processed"\n'
        ),
    )
    (root / ".env").write_text(
        f"CAMPAIGN_SECRET_KEY={SECRET_KEY}\nMAILBOX_USERNAME={server.username}\n"
        f"MAILBOX_PASSWORD={server.password}\n"
    )
    return root


def sample(name: str, email_address: str, send_id: str) -> bytes:
    text = (SAMPLES / name).read_text().format(email=email_address, send_id=send_id)
    return text.replace("\n", "\r\n").encode()


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
