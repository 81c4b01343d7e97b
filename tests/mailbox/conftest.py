"""A real dovecot for `campaign mailbox` (IMAP, and POP3 when dovecot-pop3d is installed):
messages put in its one mailbox over IMAP, read back over IMAP, and workspaces that read it."""

from __future__ import annotations

import email
import email.policy
import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET_KEY, unavailable
from tests.providers import test_smtp
from tests.send.conftest import make_config
from tests.servers.dovecot import Dovecot, available, dovecot

SAMPLES = Path(__file__).parent / "samples"
certificate = test_smtp.certificate


@pytest.fixture
def imap(certificate: tuple[Path, Path]) -> Iterator[Dovecot]:
    if not available():
        unavailable("dovecot is not installed (apt-get install dovecot-imapd)")
    with dovecot(*certificate) as server:
        yield server


@pytest.fixture
def pop3(certificate: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """The same dovecot, serving POP3 too (its IMAP puts messages in and reads them back);
    parametrised indirectly, a dict of dovecot()'s options (another password)."""
    if not available(pop3=True):
        unavailable("dovecot's POP3 is not installed (apt-get install dovecot-pop3d)")
    with dovecot(*certificate, **getattr(request, "param", {})) as server:
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


def workspace(
    root: Path,
    db_url: str,
    server: Dovecot,
    security: str,
    *,
    protocol: str = "imap",
    password: str = "",
    trusted: bool = True,
) -> Path:
    """A workspace whose [mailbox] is `server` over `protocol`: its certificate trusted (the
    ca_file) unless not `trusted`, its login the server's unless another `password`."""
    port = {
        ("imap", "tls"): server.imaps_port,
        ("imap", "starttls"): server.imap_port,
        ("pop3", "tls"): server.pop3s_port,
        ("pop3", "starttls"): server.pop3_port,
    }[(protocol, security)]
    make_config(
        root,
        db_url,
        toml=(
            '[send]\nunsubscribe_mailto = "unsubscribe@news.example.org"\n'
            f'[mailbox]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
            f'protocol = "{protocol}"\nprocessed_folder = "Processed"\n'
            + (f'ca_file = "{server.ca_file}"\n' if trusted else "")
        ),
    )
    (root / ".env").write_text(
        f"CAMPAIGN_SECRET_KEY={SECRET_KEY}\nMAILBOX_USERNAME={server.username}\n"
        f"MAILBOX_PASSWORD={password or server.password}\n"
    )
    return root


def sample(name: str, email_address: str, send_id: str) -> bytes:
    text = (SAMPLES / name).read_text().format(email=email_address, send_id=send_id)
    return text.replace("\n", "\r\n").encode()
