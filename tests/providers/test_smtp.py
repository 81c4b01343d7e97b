"""SMTP against a real aiosmtpd server on loopback: STARTTLS (a certificate made here),
implicit TLS, AUTH, and the exact bytes that arrive; replies mapped per recipient."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from campaign import mime
from campaign.config import load_config
from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers import Status, create
from campaign.providers.smtp import SMTPProvider
from tests.servers import free_port

USER, PASSWORD = "mailer", "s3cret-smtp-password"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Recorder:
    """An aiosmtpd handler: keeps what arrives; replies can be scripted per recipient."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.logins: list[bytes] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def _context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=_context(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=handler.authenticate,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def provider(
    port: int, certificate: tuple[Path, Path], password: str = PASSWORD, **options: Any
) -> SMTPProvider:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "ca_file": str(certificate[0]),
        **options,
    }
    return SMTPProvider(settings, {"SMTP_PASSWORD": password})


def message(n: int, **changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        send_id=f"sid{n}",
        campaign="c",
        from_="Org <news@news.example.org>",
        to_email=f"user{n}@example.com",
        to_name=f"User {n}",
        subject="Grüße",
        html="<p>Hello . world</p>\n.\n<p>ünïcode</p>",
        text="Hello\n.\nworld",
        headers={"Message-ID": f"<sid{n}@news.example.org>", "X-Campaign-Send-Id": f"sid{n}"},
    )
    fields.update(changes)
    raw = mime.render(Message(**fields))
    return Message(**fields, raw=raw)


async def test_starttls_auth_and_exact_bytes(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    handler, port = starttls_server
    batch = [message(1), message(2)]
    async with provider(port, certificate) as smtp:
        results = await smtp.send(batch)
    assert [r.status for r in results] == [Status.ACCEPTED, Status.ACCEPTED]
    assert [r.provider_id for r in results] == ["2.0.0 Ok: queued as Q1", "2.0.0 Ok: queued as Q2"]
    assert handler.logins == [USER.encode()]
    for sent, (mail_from, rcpt_tos, data) in zip(batch, handler.received, strict=True):
        assert (mail_from, rcpt_tos) == ("news@news.example.org", [sent.to_email])
        assert data == sent.raw  # byte for byte: dot-stuffing undone, CRLF kept
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert parsed["Subject"] == "Grüße" and parsed["X-Campaign-Send-Id"] == sent.send_id


async def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    handler = Recorder()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ssl_context=_context(certificate)
    )
    controller.start()
    try:
        smtp = SMTPProvider(
            {"host": "127.0.0.1", "port": port, "security": "tls", "ca_file": str(certificate[0])},
            {},
        )
        results = await smtp.send([message(1)])
    finally:
        controller.stop()
    assert results[0].status is Status.ACCEPTED and len(handler.received) == 1


async def test_replies_mapped_per_recipient(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    handler, port = starttls_server
    handler.rcpt_replies = {
        "user1@example.com": "550 5.1.1 No such user",
        "user2@example.com": "451 4.3.0 Try later",
    }
    results = await provider(port, certificate).send([message(1), message(2), message(3)])
    assert [r.status for r in results] == [Status.BOUNCED, Status.RETRY, Status.ACCEPTED]
    assert "550" in results[0].reason and "451" in results[1].reason
    assert [rcpt for _, rcpt, _ in handler.received] == [["user3@example.com"]]


async def test_data_refused(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    handler, port = starttls_server
    handler.data_reply = "554 5.6.0 Message refused"
    results = await provider(port, certificate).send([message(1)])
    assert results[0].status is Status.BOUNCED and "554" in results[0].reason


async def test_bad_password_stops_without_showing_it(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    _, port = starttls_server
    with pytest.raises(ProviderError) as info:
        await provider(port, certificate, password="wrong-password-xyz").send([message(1)])
    assert "login" in str(info.value) and "wrong-password-xyz" not in str(info.value)


async def test_untrusted_certificate_is_not_sent_to(starttls_server: tuple[Recorder, int]) -> None:
    handler, port = starttls_server
    smtp = SMTPProvider(
        {"host": "127.0.0.1", "port": port, "username": USER}, {"SMTP_PASSWORD": PASSWORD}
    )
    results = await smtp.send([message(1)])
    assert results[0].status is Status.RETRY and not handler.received


async def test_unreachable_server_is_retried() -> None:
    results = await SMTPProvider(
        {"host": "127.0.0.1", "port": free_port(), "security": "none"}, {}
    ).send([message(1)])
    assert results[0].status is Status.RETRY and "unreachable" in results[0].reason


def test_password_comes_from_environment() -> None:
    with pytest.raises(ConfigError, match="SMTP_PASSWORD"):
        SMTPProvider({"host": "mail.example.org", "username": "u"}, {})
    with pytest.raises(ConfigError, match="host"):
        SMTPProvider({}, {})


def test_ca_file_is_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text(
        '[provider]\nname = "smtp"\nhost = "127.0.0.1"\nca_file = "certs/relay.pem"\n'
    )
    provider = create(load_config(tmp_path, environ={}))
    assert isinstance(provider, SMTPProvider)
    assert provider._client().cert_bundle == str(tmp_path.resolve() / "certs" / "relay.pem")


@pytest.mark.parametrize("announced", [True, False], ids=["smtputf8", "ascii-only"])
async def test_a_non_ascii_address_needs_smtputf8_and_fails_alone(announced: bool) -> None:
    handler, port = Recorder(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=announced)
    controller.start()
    try:
        smtp = SMTPProvider({"host": "127.0.0.1", "port": port, "security": "none"}, {})
        async with smtp:
            results = await smtp.send([message(1, to_email="josé@example.com"), message(2)])
    finally:
        controller.stop()
    if announced:
        assert [r.status for r in results] == [Status.ACCEPTED, Status.ACCEPTED]
        assert handler.received[0][1] == ["josé@example.com"]
        data = handler.received[0][2].decode("utf-8")  # RFC 6532: the address as UTF-8
        parsed = email.message_from_string(data, policy=email.policy.SMTPUTF8)
        assert parsed["To"].addresses[0].addr_spec == "josé@example.com"
    else:
        assert [r.status for r in results] == [Status.REJECTED, Status.ACCEPTED]
        assert "josé@example.com" in results[0].reason and "SMTPUTF8" in results[0].reason
        assert [rcpt for _, rcpt, _ in handler.received] == [["user2@example.com"]]
