"""A message as RFC 5322 bytes, built fast enough for a million recipients.

Building an `email.message.EmailMessage` per recipient runs at a few hundred per
second. Here each text part is quoted-printable: the constant pieces between
placeholders are encoded once per campaign, and per recipient only the short
filled values are encoded. Every encoded piece that does not end a line ends with
a soft line break ("=" CRLF), which a decoder removes, so concatenated pieces
decode to the concatenated text and no line exceeds 76 characters.

The boundary contains "=_", which quoted-printable output can never contain, so
one constant boundary serves every message.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping, Sequence
from email.utils import formataddr, parseaddr
from functools import lru_cache

from campaign.message import Message

CRLF = "\r\n"
BOUNDARY = "=_campaign_alternative"
_SOFT_BREAK = b"=\r\n"
_MAX_LINE = 76

_SAFE = re.compile(r"[!-<>-~]*")
"""Printable ASCII but "=" and space: quoted-printable leaves it as it is."""

_CONTROL = {c: " " for c in (*range(0x00, 0x20), 0x7F) if c != 0x09}


def one_line(value: str) -> str:
    """`value` with CR, LF and other control characters turned into spaces: it can never
    start a header line (or end one early)."""
    return value.translate(_CONTROL) if not value.isprintable() else value


def quoted_printable(text: str) -> bytes:
    """`text` as quoted-printable with CRLF line ends, ending in a soft line break
    unless it ends a line, so that encoded pieces can be concatenated."""
    if not text:
        return b""
    if _SAFE.fullmatch(text):  # a URL, a plain name: nothing to escape
        encoded = text.encode("ascii")
        return (_fold(encoded) if len(encoded) > _MAX_LINE - 1 else encoded) + _SOFT_BREAK
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(
        b"\n", b"\r\n"
    )
    if len(encoded) > _MAX_LINE - 1:
        encoded = _fold(encoded)
    return encoded if encoded.endswith(b"\r\n") else encoded + _SOFT_BREAK


def _fold(encoded: bytes) -> bytes:
    """Lines of at most 75 characters, so a soft break may follow any of them. (b2a_qp can
    write 77 when it escapes whitespace at a line's end.) Never splits an "=XX" escape."""
    out = []
    for line in encoded.split(b"\r\n"):
        while len(line) > _MAX_LINE - 1:
            cut = _MAX_LINE - 2
            escape = line.rfind(b"=", cut - 2, cut)
            if escape != -1:
                cut = escape
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\r\n".join(out)


class Body:
    """A text part split on its placeholders: constant pieces encoded once, values per recipient."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: Sequence[str]) -> None:
        self._pieces = [quoted_printable(piece) for piece in pieces]

    def fill(self, values: Sequence[str]) -> bytes:
        """The encoded part with `values` (one per gap between pieces) filled in."""
        joined = [b""] * (2 * len(self._pieces) - 1)
        joined[0::2] = self._pieces
        joined[1::2] = [quoted_printable(v) for v in values]
        return b"".join(joined)


MAX_HEADER_LINE = 78
"""RFC 5322's recommended limit: longer header lines are folded at their whitespace."""
_WORD_BYTES = 39
"""UTF-8 bytes per encoded-word: 52 base64 characters, 64 with "=?utf-8?b?" and "?=", so
a word fits the 75 that RFC 2047 allows and, after "Reply-To: ", the 78 of a line."""


def header(name: str, value: str) -> str:
    """One header line (CRLF included), folded at 78 where it has whitespace: ASCII as is,
    anything else as RFC 2047 encoded-words."""
    value = one_line(value)
    if not value.isascii():
        value = " ".join(encoded_words(value))
    return fold(f"{name}: {value}")


def fold(line: str) -> str:
    """`line` with CRLF, folded before a space wherever it would pass 78 characters. A run
    without whitespace (a long URL, a message id) cannot be folded and stays whole."""
    if len(line) <= MAX_HEADER_LINE:
        return line + CRLF
    words = line.split(" ")
    lines: list[str] = []
    current = " ".join(words[:2])  # the name and the value's first word: never apart
    for word in words[2:]:
        if len(current) + 1 + len(word) > MAX_HEADER_LINE and current.strip() and word:
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return CRLF.join(lines) + CRLF


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded-words (UTF-8, base64) of at most 64 characters each,
    never splitting a character; the spaces between them are not part of the text."""
    words, chunk = [], b""
    for character in text:
        data = character.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return [f"=?utf-8?b?{binascii.b2a_base64(w, newline=False).decode()}?=" for w in words]


def address_header(name: str, display: str, addr: str) -> str:
    """An address header ("Name <addr>"): a non-ASCII name as encoded-words, an ASCII one
    quoted where it must be; folded. A non-ASCII address stays UTF-8 (RFC 6532, for
    servers that announce SMTPUTF8)."""
    display, addr = one_line(display), one_line(addr)
    if not display:
        return fold(f"{name}: {addr}")
    if display.isascii():
        phrase = formataddr((display, "x")).removesuffix(" <x>")
    else:
        phrase = " ".join(encoded_words(display))
    return fold(f"{name}: {phrase} <{addr}>")


@lru_cache(maxsize=256)
def sender_header(name: str, value: str) -> str:
    """From or Reply-To from its "Name <addr>" setting: the same for every recipient."""
    display, addr = parseaddr(one_line(value))
    return address_header(name, display, addr)


def _part_head(content_type: str) -> bytes:
    return (
        f'--{BOUNDARY}{CRLF}Content-Type: {content_type}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
    ).encode("ascii")


_MULTIPART = (
    f'MIME-Version: 1.0{CRLF}Content-Type: multipart/alternative; boundary="{BOUNDARY}"{CRLF}{CRLF}'
)
_TEXT_HEAD = _part_head("text/plain")
_HTML_HEAD = b"\r\n" + _part_head("text/html")
_END = f"{CRLF}--{BOUNDARY}--{CRLF}".encode("ascii")


def render(message: Message, *, html: bytes | None = None, text: bytes | None = None) -> bytes:
    """The message as bytes: multipart/alternative with the text and the HTML part.

    `html` and `text` are the parts already encoded (by `Body.fill`); without them
    the message's own html and text are encoded here (slower, for one-off messages).
    """
    return assemble(
        message.from_,
        message.to_name,
        message.to_email,
        message.subject,
        message.reply_to,
        message.headers,
        quoted_printable(message.html) if html is None else html,
        quoted_printable(message.text) if text is None else text,
    )


def assemble(
    from_: str,
    to_name: str,
    to_email: str,
    subject: str,
    reply_to: str | None,
    headers: Mapping[str, str],
    html: bytes,
    text: bytes,
) -> bytes:
    """Headers and the two encoded parts joined into one message (`render` for a Message)."""
    lines = [
        sender_header("From", from_),
        address_header("To", to_name, to_email),
        header("Subject", subject),
    ]
    if reply_to:
        lines.append(sender_header("Reply-To", reply_to))
    lines.extend([header(name, value) for name, value in headers.items()])
    lines.append(_MULTIPART)
    # UTF-8 only in a non-ASCII address (SMTPUTF8); everything else is ASCII by now.
    return b"".join(("".join(lines).encode("utf-8"), _TEXT_HEAD, text, _HTML_HEAD, html, _END))
