"""Compiled campaign + one recipient -> one Message, by string filling only.

The HTML and text are split once per campaign on the placeholder tokens; per
recipient the pieces are joined with that recipient's values. Nothing per
recipient runs MJML, Jinja or premailer. A merge field that is empty or missing
gets its token's fallback; its value is HTML-escaped in the HTML part and never
holds CR or LF anywhere (so it can add neither markup nor a header line). The
subject is filled the same way (mime encodes it as RFC 2047 words when needed).
The view-in-browser link is the same for everyone; forward, preferences and
unsubscribe carry a signed token of the recipient's public id.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol

import orjson

from campaign import mime
from campaign.audience import addresses
from campaign.audience.models import MAX_NAME_LENGTH
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.links import PURPOSES, Links
from campaign.message import CAMPAIGN_HEADER, SEND_ID_HEADER, Message
from campaign.placeholders import PATTERN, fallback

TEST_PREFIX = "[TEST] "


class Recipient(Protocol):
    """What personalisation reads of a subscriber (campaign.audience.Recipient fits)."""

    @property
    def public_id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, Any]: ...


class Template:
    """A text split once on its placeholders: `pieces` around each of `slots`, a slot being
    the token without its braces ("field:first_name:friend")."""

    __slots__ = ("pieces", "slots")

    def __init__(self, text: str) -> None:
        self.pieces: tuple[str, ...] = tuple(PATTERN.split(text)[0::4])
        self.slots: tuple[str, ...] = tuple(m.group(0)[3:-3] for m in PATTERN.finditer(text))

    def values(self, filled: Mapping[str, str]) -> list[str]:
        return [filled[slot] for slot in self.slots]

    def fill(self, values: Sequence[str]) -> str:
        if not self.slots:
            return self.pieces[0]
        joined = [""] * (2 * len(self.pieces) - 1)
        joined[0::2] = self.pieces
        joined[1::2] = values
        return "".join(joined)


class JSONBody:
    """A template's pieces escaped as JSON once per campaign; per recipient only the values are
    escaped. JSON escapes character by character, so the escaped pieces and values joined are
    exactly the escape of the filled text."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces: tuple[bytes, ...] = tuple(orjson.dumps(piece)[1:-1] for piece in pieces)

    def fill(self, values: Sequence[str]) -> bytes:
        """The filled text as a JSON string literal, quotes included."""
        joined = [b'"'] * (2 * len(self.pieces) + 1)
        joined[1:-1:2] = self.pieces
        joined[2:-1:2] = [orjson.dumps(value)[1:-1] for value in values]
        return b"".join(joined)


def field_value(recipient: Recipient, name: str) -> str:
    """A merge field: `email`, `name`, `first_name` (else the name's first word), or a custom field."""
    if name == "email":
        return recipient.email
    value = recipient.fields.get(name)
    if value is not None and value != "":
        return str(value)
    if name == "name":
        return recipient.name or ""
    if name == "first_name":
        return (recipient.name or "").split(" ", 1)[0]
    return ""


def sender_domain(from_: str) -> str:
    address = parseaddr(from_)[1]
    return address.rpartition("@")[2].lower() or "localhost"


def list_id_for(config: Config, list_name: str, domain: str) -> str:
    """`[send] list_id`, or `<list-name.sender-domain>` (RFC 2919)."""
    if config.send.list_id:
        value = config.send.list_id.strip()
        return value if "<" in value else f"<{value}>"
    label = re.sub(r"[^a-z0-9-]+", "-", list_name.lower()).strip("-") or "list"
    return f"<{label}.{domain}>"


class _Clock:
    """RFC 5322 Date, formatted once per second rather than once per message."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            # "+0000", not the obsolete "GMT" (RFC 5322 4.3) that strict receivers flag.
            self._second, self._value = second, format_datetime(datetime.fromtimestamp(second, UTC))
        return self._value


class Personaliser:
    """Makes the messages of one campaign; built once per send, used per recipient."""

    def __init__(
        self,
        compiled: Compiled,
        links: Links,
        *,
        list_id: str,
        unsubscribe_mailto: str | None = None,
        subject_prefix: str = "",
        raw: bool = False,
        json: bool = False,
    ) -> None:
        self.compiled = compiled
        self.links = links
        self.raw = raw
        self.html = Template(compiled.html)
        self.text = Template(compiled.text)
        self.subject = Template(subject_prefix + compiled.subject)
        slots = {*self.html.slots, *self.text.slots, *self.subject.slots}
        self._fields = sorted(
            {
                (m.group(0)[3:-3], m.group(2), mime.one_line(fallback(m)))
                for text in (compiled.html, compiled.text, subject_prefix + compiled.subject)
                for m in PATTERN.finditer(text)
                if m.group(1) == "field"
            }
        )
        """(slot, field name, fallback) of every merge field."""
        self._names = sorted({name for _, name, _ in self._fields})
        self._purposes = [p for p in PURPOSES if p == "unsubscribe" or f"link:{p}" in slots]
        self._view = links.view_url(compiled.slug)
        self._html_body = mime.Body(self.html.pieces) if raw else None
        self._text_body = mime.Body(self.text.pieces) if raw else None
        self._json_bodies = (
            (JSONBody(self.html.pieces), JSONBody(self.text.pieces)) if json else None
        )
        self.domain = sender_domain(compiled.from_)
        # Per recipient: the unsubscribe link's signed token in the subject, which
        # `campaign mailbox` reads back.
        self._mailto = (
            f", <mailto:{unsubscribe_mailto}?subject=unsubscribe%20" if unsubscribe_mailto else ""
        )
        self._constant_headers = {
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
            "List-Id": list_id,
            CAMPAIGN_HEADER: compiled.slug,
        }
        self._clock = _Clock()

    @classmethod
    def for_config(
        cls,
        config: Config,
        compiled: Compiled,
        *,
        list_name: str,
        subject_prefix: str = "",
        raw: bool = False,
        json: bool = False,
    ) -> Personaliser:
        """A personaliser with the workspace's signing key (ConfigError when unset) and settings."""
        links = Links(
            config.secret_key, config.public_base_url, max_age_days=config.web.token_max_age_days
        )
        return cls(
            compiled,
            links,
            list_id=list_id_for(config, list_name, sender_domain(compiled.from_)),
            unsubscribe_mailto=config.send.unsubscribe_mailto,
            subject_prefix=subject_prefix,
            raw=raw,
            json=json,
        )

    def _mailto_for(self, unsubscribe_url: str) -> str:
        return f"{self._mailto}{unsubscribe_url.rsplit('/', 1)[1]}>" if self._mailto else ""

    def message(self, recipient: Recipient, send_id: str, address: str | None = None) -> Message:
        """Recipient's message; `address` is their address as the transport carries it (an
        IDNA domain: `Provider.address`), else as stored."""
        slug = self.compiled.slug
        fields = {name: mime.one_line(field_value(recipient, name)) for name in self._names}
        text_values = {slot: fields[name] or default for slot, name, default in self._fields}
        text_values["link:view"] = self._view
        urls = self.links.urls(recipient.public_id, slug, self._purposes)
        unsubscribe = urls["unsubscribe"]
        for purpose, url in urls.items():
            text_values[f"link:{purpose}"] = url
        html_values = {slot: html.escape(value) for slot, value in text_values.items()}
        html_list = self.html.values(html_values)
        text_list = self.text.values(text_values)
        to_email = address or addresses.transport(recipient.email, smtputf8=True)
        to_name = mime.one_line(recipient.name or "")[:MAX_NAME_LENGTH]  # a bounded To: line
        subject = self.subject.fill(self.subject.values(text_values))
        headers = {
            "Date": self._clock.now(),
            "Message-ID": f"<{send_id}@{self.domain}>",
            "List-Unsubscribe": f"<{unsubscribe}>{self._mailto_for(unsubscribe)}",
            **self._constant_headers,
            SEND_ID_HEADER: send_id,
        }
        raw = None
        if self._html_body is not None and self._text_body is not None:
            raw = mime.assemble(
                self.compiled.from_,
                to_name,
                to_email,
                subject,
                self.compiled.reply_to,
                headers,
                self._html_body.fill(html_list),
                self._text_body.fill(text_list),
            )
        json_bodies = None
        if self._json_bodies is not None:
            json_bodies = (
                self._json_bodies[0].fill(html_list),
                self._json_bodies[1].fill(text_list),
            )
        # Made only if read: a provider that sends `raw` or `json_bodies` never does.
        return Message.deferred(
            lambda: (self.html.fill(html_list), self.text.fill(text_list)),
            send_id=send_id,
            campaign=slug,
            from_=self.compiled.from_,
            to_email=to_email,
            to_name=to_name,
            subject=subject,
            reply_to=self.compiled.reply_to,
            headers=headers,
            merge=fields,
            raw=raw,
            json_bodies=json_bodies,
        )
