"""Signed, purpose-bound links: the personal URLs that every message carries.

A token carries the subscriber's random public id and the campaign slug, never the
address. Each purpose signs with its own salt, so an unsubscribe token cannot open
the preferences page and no token can be forged or altered without the key. The
view-in-browser link is the same for every recipient and needs no token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes
from itsdangerous.serializer import Serializer

Purpose = Literal["forward", "preferences", "unsubscribe"]
PURPOSES: tuple[Purpose, ...] = ("forward", "preferences", "unsubscribe")


class BadLink(Exception):
    """A token that is forged, altered, of another purpose, or expired. Reveals nothing more."""


@dataclass(frozen=True, slots=True)
class Claims:
    subscriber: str
    """The subscriber's public id."""
    campaign: str
    """The campaign slug (empty for links not tied to a campaign)."""


class Links:
    """Makes and checks the URLs under the public base URL."""

    def __init__(self, secret_key: str, base_url: str, *, max_age_days: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_age = max_age_days * 86400 if max_age_days else None
        self._serializers = {
            purpose: URLSafeTimedSerializer(secret_key, salt=f"campaign.link.{purpose}")
            for purpose in PURPOSES
        }
        signers = {purpose: s.make_signer(s.salt) for purpose, s in self._serializers.items()}
        self._macs = {
            p: hmac.new(s.derive_key(), digestmod=s.digest_method) for p, s in signers.items()
        }
        self._second, self._stamp = -1, b""

    def token(self, purpose: Purpose, subscriber: str, campaign: str) -> str:
        return str(self._serializers[purpose].dumps([subscriber, campaign]))

    def verify(self, purpose: Purpose, token: str) -> Claims:
        """The claims of a valid token for `purpose`; BadLink for anything else."""
        serializer = self._serializers.get(purpose)
        if serializer is None:
            raise BadLink("unknown purpose")
        try:
            subscriber, campaign = serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise BadLink("expired") from None
        except (BadSignature, ValueError, TypeError):
            raise BadLink("invalid") from None
        if not isinstance(subscriber, str) or not isinstance(campaign, str):
            raise BadLink("invalid")
        return Claims(subscriber, campaign)

    def url(self, purpose: Purpose, subscriber: str, campaign: str) -> str:
        return f"{self.base_url}/{purpose}/{self.token(purpose, subscriber, campaign)}"

    def urls(
        self, subscriber: str, campaign: str, purposes: Iterable[Purpose] = PURPOSES
    ) -> dict[Purpose, str]:
        """The personal URLs of one recipient, byte for byte as `url` makes them, several times
        faster (the send engine calls this once per recipient): the payload is serialised once
        (uncompressed: two short ids never shrink) and signed per purpose with a keyed HMAC
        prepared once, as itsdangerous's TimestampSigner.sign would."""
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, base64_encode(int_to_bytes(second))
        payload = base64_encode(
            Serializer.dump_payload(self._serializers["unsubscribe"], [subscriber, campaign])
        )
        value = payload + b"." + self._stamp
        urls: dict[Purpose, str] = {}
        for purpose in purposes:
            mac = self._macs[purpose].copy()
            mac.update(value)
            urls[purpose] = (
                f"{self.base_url}/{purpose}/{(value + b'.' + base64_encode(mac.digest())).decode()}"
            )
        return urls

    def view_url(self, campaign: str) -> str:
        """The web copy of a campaign: the same for every recipient."""
        return f"{self.base_url}/archive/{campaign}"
