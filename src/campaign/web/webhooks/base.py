"""What every webhook service shares: the event model, the request as a service sees it,
secrets, signature helpers and the replay window.

A service module declares one `Service`: its name, the environment variables it reads
and its normaliser. A normaliser checks the request the way the service documents (a
signature, or a shared secret) and turns its payload into `Event`s of four kinds:
delivered, bounced (hard or soft), complained, unsubscribed. A request that fails
verification raises `Refused` (answered 401) before anything is read from its payload;
a verified one that cannot be parsed raises `Malformed` (400).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from sqlalchemy import Engine

from campaign.message import SEND_ID_HEADER

log = logging.getLogger("campaign.web.webhooks")

Kind = Literal["delivered", "bounced", "complained", "unsubscribed"]


class Refused(Exception):
    """Missing or wrong signature or secret, a stale timestamp, a reused token: answered
    401, nothing changes."""


class Malformed(Exception):
    """A verified request whose payload we cannot read: answered 400."""


@dataclass(frozen=True, slots=True)
class Event:
    """One normalised event about one recipient address."""

    service: str
    event_id: str
    kind: Kind
    email: str
    hard: bool = False
    """For bounces: permanent (never mail again) rather than transient (counted)."""
    send_id: str | None = None
    """Our ledger's send id, when the service echoes the metadata we sent."""
    provider_id: str | None = None
    """The service's message id, as its send API returned it."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a normaliser sees of a request."""

    url: str
    """The public URL the service posts to (public_base_url + path), as the service signs it."""
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: bytes


@dataclass
class Context:
    """What the normalisers need besides the request: secrets, outbound HTTP (SNS only)
    and the database (Mailgun's used tokens)."""

    env: Mapping[str, str]
    http: httpx.AsyncClient
    engine: Engine | None = None
    cert_cache: dict[str, bytes] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)
    """SNS subscriptions this process confirmed (their topic ARNs)."""

    def secret(self, variable: str) -> str:
        value = self.env.get(variable, "").strip()
        if not value:
            log.warning("webhook refused: %s is not set", variable)
            raise Refused(f"{variable} is not set")
        return value

    async def fetch_cert(self, url: str) -> bytes:
        if url not in self.cert_cache:
            response = await self.http.get(url)
            response.raise_for_status()
            self.cert_cache[url] = response.content
        return self.cert_cache[url]


Normaliser = Callable[[Incoming, Context], Awaitable[list[Event]]]


@dataclass(frozen=True, slots=True)
class Service:
    """One mail service's webhook: /webhooks/<name>.

    `secrets` are the environment variables it reads (the first is required), named
    once in the service's module beside the normaliser that reads them, so the
    documented list and what is read cannot disagree. `max_age` is the replay window for services that sign a
    timestamp (None: the service signs none, so only exactly-once recording protects)."""

    name: str
    secrets: tuple[str, ...]
    normalise: Normaliser
    max_age: int | None = None
    signs_body: bool = True
    """Whether the signature covers the payload (False: a shared secret, or Mailgun's token)."""


# ---------------------------------------------------------------- signature helpers


def check_age(sent_at: float, max_age: int) -> None:
    """Refuse a signed timestamp further than `max_age` seconds from now (either way:
    a clock running ahead must not stretch the window)."""
    if abs(time.time() - sent_at) > max_age:
        raise Refused("timestamp outside the replay window")


def parse_time(value: str) -> float:
    """Unix seconds from a signed timestamp; Refused when it is not one."""
    try:
        return float(value)
    except ValueError:
        raise Refused("unreadable timestamp") from None


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison: a secret is never found a character at a time."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def basic_credentials(headers: Mapping[str, str]) -> str | None:
    """The "user:password" of a Basic Authorization header."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------- payload helpers


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None


_SEND_ID_KEYS = ("send_id", "campaign_send_id", SEND_ID_HEADER, SEND_ID_HEADER.lower())
_SEND_ID_NAMES = {k.lower() for k in _SEND_ID_KEYS}


def send_id_of(*sources: Any) -> str | None:
    """Our send id from the metadata a service echoes back (custom args, tags, headers)."""
    for source in sources:
        if isinstance(source, Mapping):
            for key in _SEND_ID_KEYS:
                if isinstance(source.get(key), str) and source[key]:
                    return str(source[key])
        elif isinstance(source, list):  # [{"name": ..., "value": ...}]
            for item in source:
                if isinstance(item, Mapping) and str(item.get("name", "")).lower() in (
                    _SEND_ID_NAMES
                ):
                    value = item.get("value")
                    if isinstance(value, list):
                        value = value[0] if value else None
                    if isinstance(value, str) and value:
                        return value
    return None


def text(value: Any) -> str:
    return "" if value is None else str(value)


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: payloads are read defensively."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
