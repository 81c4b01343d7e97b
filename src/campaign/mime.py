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
from email.header import Header
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


def header(name: str, value: str) -> str:
    """One header line (CRLF included): ASCII as is, anything else as RFC 2047 encoded words."""
    value = one_line(value)
    if value.isascii() and len(name) + len(value) < 996:
        return f"{name}: {value}{CRLF}"
    return _encoded_header(name, value)


@lru_cache(maxsize=256)
def _encoded_header(name: str, value: str) -> str:
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: {Header(value, charset, header_name=name).encode(linesep=CRLF)}{CRLF}"


@lru_cache(maxsize=256)
def address(value: str) -> str:
    """An address header value ("Name <addr>"), the display name encoded when not ASCII."""
    name, addr = parseaddr(one_line(value))
    return formataddr((name, addr), charset="utf-8")


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
    to = formataddr((one_line(to_name), one_line(to_email)), charset="utf-8")
    lines = [header("From", address(from_)), header("To", to), header("Subject", subject)]
    if reply_to:
        lines.append(header("Reply-To", address(reply_to)))
    lines.extend([header(name, value) for name, value in headers.items()])
    lines.append(_MULTIPART)
    return b"".join(("".join(lines).encode("ascii"), _TEXT_HEAD, text, _HTML_HEAD, html, _END))
