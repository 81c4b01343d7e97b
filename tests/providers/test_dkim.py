"""DKIM for SMTP senders: `campaign dkim` makes a key and prints its DNS record; the smtp
provider signs with it; dkimpy's own verifier, given that record as the DNS answer, accepts
the message as it arrives at a real SMTP server, and rejects it once List-Unsubscribe changes."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller

from campaign.config import load_config
from campaign.errors import ConfigError
from campaign.providers import create
from tests.conftest import run_cli
from tests.providers.test_smtp import Recorder, message
from tests.servers import free_port

DKIM_TOML = '[provider.dkim]\nkey_file = "keys/dkim.pem"\nselector = "news2026"\ndomain = "news.example.org"\n'


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    handler, port = Recorder(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_workspace(root: Path, port: int, dkim_toml: str = DKIM_TOML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "campaign.toml").write_text(
        'public_base_url = "https://news.example.org"\n'
        f'[provider]\nname = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        + dkim_toml
    )
    return root


def printed_record(out: str) -> tuple[str, str]:
    """The record name and value, read back from the zone-file line `campaign dkim` prints."""
    line = re.search(r"^(\S+)\. IN TXT \( (.+) \)$", out, re.M)
    assert line is not None, out
    return line.group(1), "".join(re.findall(r'"([^"]*)"', line.group(2)))


async def test_signed_mail_verifies_against_the_printed_record_and_breaks_when_changed(
    tmp_path: Path, smtp_server: tuple[Recorder, int], capsys: pytest.CaptureFixture[str]
) -> None:
    handler, port = smtp_server
    root = smtp_workspace(tmp_path / "ws", port)
    code, out, _err = run_cli(capsys, "--workspace", str(root), "dkim")
    assert code == 0 and "Made a new 2048-bit key" in out
    assert (root / "keys" / "dkim.pem").stat().st_mode & 0o077 == 0
    name, record = printed_record(out)
    assert name == "news2026._domainkey.news.example.org" and record.startswith(
        "v=DKIM1; k=rsa; p="
    )
    code, again, _err = run_cli(capsys, "--workspace", str(root), "dkim")
    assert code == 0 and "Made a new" not in again and printed_record(again) == (name, record)

    async with create(load_config(root, environ={})) as smtp:
        sent = message(
            1,
            headers={
                "Date": "Mon, 30 Nov 2026 09:00:00 +0000",
                "Message-ID": "<sid1@news.example.org>",
                "List-Unsubscribe": "<https://news.example.org/unsubscribe/tok1>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        await smtp.send([sent])
    arrived = handler.received[0][2]

    def dns(query: bytes, timeout: int = 5) -> bytes:
        assert query == f"{name}.".encode()
        return record.encode()

    assert dkim.verify(arrived, dnsfunc=dns)
    parsed = email.message_from_bytes(arrived, policy=email.policy.default)
    covered = parsed["DKIM-Signature"].replace("\r\n", "").replace(" ", "")
    tags = dict(t.split("=", 1) for t in covered.split(";") if "=" in t)
    assert set(tags["h"].lower().split(":")) >= {
        "from",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
    changed = arrived.replace(b"/unsubscribe/tok1>", b"/unsubscribe/tok2>")
    assert changed != arrived and not dkim.verify(changed, dnsfunc=dns)
    one_click_dropped = arrived.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""
    )
    assert not dkim.verify(one_click_dropped, dnsfunc=dns)


def test_a_missing_key_or_section_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"keys/dkim\.pem.*campaign dkim"):
        create(load_config(smtp_workspace(tmp_path / "a", 25), environ={}))
    from campaign.dkim_signer import dns_record_for

    with pytest.raises(ConfigError, match=r"no \[provider\.dkim\]"):
        dns_record_for(load_config(smtp_workspace(tmp_path / "b", 25, dkim_toml=""), environ={}))
