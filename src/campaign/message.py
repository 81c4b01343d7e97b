"""The provider-neutral message: what the engine hands to a mail service, one per recipient."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEND_ID_HEADER = "X-Campaign-Send-Id"
"""Carries our own id for one (campaign, recipient) delivery, so a webhook or a
provider's log can be matched to the ledger row."""

CAMPAIGN_HEADER = "X-Campaign"


@dataclass(frozen=True, slots=True)
class Message:
    """One personalised email. `headers` holds every header beyond From/To/Subject/Reply-To.

    Headers already include Message-ID, Date, List-Unsubscribe, List-Unsubscribe-Post,
    List-Id, X-Campaign and X-Campaign-Send-Id, so each provider passes them on as
    they are. Values never contain CR or LF.
    """

    send_id: str
    campaign: str
    from_: str
    to_email: str
    to_name: str
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    merge: Mapping[str, str] = field(default_factory=dict)
    """The recipient's merge fields, for services that want them as metadata."""
    raw: bytes | None = None
    """The whole message as RFC 5322 bytes (CRLF line ends), filled by the engine for
    providers that send MIME (`Provider.wants_raw`); else `campaign.mime.render(message)`."""
    json_bodies: tuple[bytes, bytes] | None = None
    """`html` and `text` as JSON string literals (UTF-8, quotes included), filled by the engine
    for providers that send JSON (`Provider.wants_json`) from pieces escaped once per campaign."""
    _bodies: Callable[[], tuple[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def deferred(cls, bodies: Callable[[], tuple[str, str]], **fields: Any) -> Message:
        """A message whose `html` and `text` are made by `bodies()` when first read. A provider
        that sends `raw` or `json_bodies` never reads them: two strings of the newsletter's
        size per message, made for nothing, were a third of personalising."""
        message = cls(html="", text="", **fields)
        object.__delattr__(message, "html")
        object.__delattr__(message, "text")
        object.__setattr__(message, "_bodies", bodies)
        return message

    def __getattr__(self, name: str) -> str:
        # Only for a slot left empty: `html` and `text` of a deferred message, made once.
        if name in ("html", "text") and self._bodies is not None:
            html, text = self._bodies()
            object.__setattr__(self, "html", html)
            object.__setattr__(self, "text", text)
            return html if name == "html" else text
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def to(self) -> str:
        """The To header value: "Name <address>" with the name quoted as needed."""
        from email.utils import formataddr

        return formataddr((self.to_name, self.to_email)) if self.to_name else self.to_email
