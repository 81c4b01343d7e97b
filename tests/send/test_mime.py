"""MIME built once per campaign and filled per recipient parses back to exactly the message."""

from __future__ import annotations

import email
import email.policy
import quopri
import random
from dataclasses import fields

from campaign.links import Links
from campaign.message import Message
from campaign.mime import Body, quoted_printable, render
from campaign.personalise import Personaliser
from tests.send.conftest import compiled
from tests.send.test_personalise import R


def _decode(data: bytes) -> str:
    return quopri.decodestring(data).decode("utf-8").replace("\r\n", "\n")


def test_pieces_encoded_apart_decode_together() -> None:
    rng = random.Random(4)
    alphabet = "ab =.\t\n\r-é€😀<>\"'" + "x" * 20
    for _ in range(300):
        pieces = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
            for _ in range(rng.randint(1, 6))
        ]
        encoded = b"".join(quoted_printable(p) for p in pieces)
        expected = "".join(pieces).replace("\r\n", "\n").replace("\r", "\n")
        assert _decode(encoded) == expected
        lines = encoded.split(b"\r\n")
        assert max(len(line) for line in lines) <= 76
        assert b"=_" not in encoded and b"\n" not in encoded.replace(b"\r\n", b"")


def test_body_fill() -> None:
    body = Body(["<p>", "</p>" + "y" * 100, ""])
    assert (
        _decode(body.fill(["Zoë " * 30, "end"])) == "<p>" + "Zoë " * 30 + "</p>" + "y" * 100 + "end"
    )


def test_message_parses_back_exactly() -> None:
    c = compiled(
        subject="Grüße aus Köln — a long subject line that needs folding when it is encoded as words"
    )
    p = Personaliser(c, Links("k" * 32, "https://news.example.org"), list_id="<news.x>", raw=True)
    message = p.message(R("pub", "zoe@example.com", "Zoë Ünal", {"first_name": "Zoë"}), "sid1")
    assert message.raw is not None and message.raw.isascii()
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative" and not parsed.defects
    text, html = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content().replace("\r\n", "\n") == message.text
    assert html.get_content().replace("\r\n", "\n") == message.html
    assert parsed["Subject"] == c.subject
    assert parsed["To"].addresses[0].display_name == "Zoë Ünal"
    assert parsed["From"].addresses[0].addr_spec == "news@news.example.org"
    assert parsed["Message-ID"] == "<sid1@news.example.org>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Date"].datetime.tzinfo is not None
    head = message.raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))


def test_generic_render_equals_fast_path() -> None:
    """A one-off message (no template) renders to the same message as the engine's fast path."""
    p = Personaliser(compiled(), Links("k" * 32, "https://n.example.org"), list_id="<x>", raw=True)
    fast = p.message(R("pub", "a@example.com", "Ann"), "sid")
    assert fast.raw is not None
    slow = render(
        Message(
            **{f.name: getattr(fast, f.name) for f in fields(Message) if f.init and f.name != "raw"}
        )
    )
    one, two = (
        email.message_from_bytes(raw, policy=email.policy.default) for raw in (fast.raw, slow)
    )
    assert one.items() == two.items()
    assert [part.get_content() for part in one.iter_parts()] == [
        part.get_content() for part in two.iter_parts()
    ]
