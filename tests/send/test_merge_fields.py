"""Merge fields as recipients get them, through a real build, the engine and the outbox:
fallbacks for empty and missing fields, the subject filled per recipient and encoded
(RFC 2047) for non-ASCII and emoji, and markup in a name shown literally everywhere."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from campaign.audience import Store
from campaign.audience.models import Recipient
from campaign.compile import build
from campaign.config import load_config
from campaign.personalise import Personaliser
from campaign.send.engine import send_campaign
from tests.compile.test_merge_fields import write_greeting


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body(preferencelist=(kind,))
    assert body is not None
    return str(body.get_content())


async def test_each_recipient_gets_their_own_subject_greeting_and_fallbacks(
    workspace: Path,
) -> None:
    config = load_config(workspace)
    store = Store.open(config)
    people = {
        "zoe@example.org": ("Zoë 🎉", {"city": "Saint-Étienne"}),
        "bold@example.org": ("<b>Bo</b>", {"city": ""}),  # empty field
        "nobody@example.org": ("", {}),  # empty first name and no name; city missing
    }
    for address, (first, fields) in people.items():
        store.subscribe(
            address, list_name="newsletter", source="t", first_name=first, fields=fields
        )
    slug = write_greeting(workspace)
    summary = await send_campaign(config, build(config, slug), list_name="newsletter")
    assert summary.sent == 3
    got: dict[str, tuple[bytes, EmailMessage]] = {}
    for path in (workspace / "outbox" / slug).glob("*.eml"):
        raw = path.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        got[message["To"].addresses[0].addr_spec] = (raw, message)  # type: ignore[assignment]

    expected = {
        "zoe@example.org": ("Zoë 🎉", "Zoë 🎉", "Saint-Étienne", "Saint-Étienne"),
        "bold@example.org": (
            "<b>Bo</b>",
            "&lt;b&gt;Bo&lt;/b&gt;",
            "<somewhere>",
            "&lt;somewhere&gt;",
        ),
        "nobody@example.org": ("Friend", "friend", "<somewhere>", "&lt;somewhere&gt;"),
    }
    for address, (subject_name, html_name, city, html_city) in expected.items():
        raw, message = got[address]
        assert message["Subject"] == f"{subject_name}, your digest 🎉"
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()  # non-ASCII only as RFC 2047 encoded words
        assert re.search(rb"^Subject: =\?utf-8\?", head, re.MULTILINE)
        text, html = part(message, "plain"), part(message, "html")
        greeting = "friend" if subject_name == "Friend" else subject_name
        assert f"Dear {greeting}," in text and f"From {city}: news." in text
        assert f"Dear {html_name}," in html and f"From {html_city}: news." in html
        assert "<b>Bo</b>" not in html  # the name adds no markup
        preheader = "friend" if html_name == "friend" else html_name
        assert f"Hello {preheader}" in html
        assert "{{{" not in raw.decode("ascii")


def test_a_subject_value_cannot_break_the_header(workspace: Path) -> None:
    """The store cleans names on the way in; the personaliser cleans every value again."""
    config = load_config(workspace)
    compiled = build(config, write_greeting(workspace))
    hostile = "Eve\r\nBcc: x@evil.example\n"
    eve = Recipient.of(1, "p" * 22, "eve@example.org", "", hostile, "", {})
    personaliser = Personaliser.for_config(config, compiled, list_name="newsletter", raw=True)
    raw = personaliser.message(eve, "send-1").raw
    assert raw is not None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert "Bcc" not in message.keys()
    assert message["Subject"] == "Eve  Bcc: x@evil.example , your digest 🎉"
