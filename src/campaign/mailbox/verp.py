"""Per-recipient return paths (VERP): `bounces+<send id>-<signature>@domain`.

A relay that returns a message sends the bounce to its envelope sender, so a
signed send id there names the delivery even when the bounce quotes nothing of
the original. The signature (keyed by the workspace's secret key) means nobody
can make a bounce for a delivery they did not receive.

Some MTAs fold the local part of a return path to lower (or upper) case, so the
token survives case-folding: the send id is hex, the signature an 80-bit HMAC in
lower-case base32, and both are read case-insensitively. That also keeps the local
part within RFC 5321's 64 characters for a prefix of up to 15.

Return paths issued before (`<send id>.<base64 signature>`, itsdangerous) are still
read, since bounces come back for days: exactly, or with their case folded, by
comparing the expected signature without regard to case (about 140 of its 160 bits
remain, still far beyond guessing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from itsdangerous import Signer

_SALT = "campaign.verp"
_MAC_BYTES = 10
TOKEN = re.compile(r"\+([0-9a-f]{32})-([a-z2-7]{16})@", re.IGNORECASE)
_OLD_TOKEN = re.compile(r"\+([0-9a-f]{32})\.([A-Za-z0-9_-]+)@", re.IGNORECASE)


def _mac(secret_key: str, send_id: str) -> str:
    digest = hmac.new(secret_key.encode(), f"{_SALT}:{send_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode().lower()


def return_path(address: str, secret_key: str, send_id: str) -> str:
    """`address` ("bounces@domain") with the signed send id after a "+"."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{send_id}-{_mac(secret_key, send_id)}@{domain}"


def send_id_of(addresses: str, secret_key: str) -> str | None:
    """The send id in the first validly signed VERP address in `addresses`, if any, in
    either form and whatever the case an MTA gave it."""
    for found, mac in TOKEN.findall(addresses):
        send_id = str(found).lower()
        if hmac.compare_digest(mac.lower(), _mac(secret_key, send_id)):
            return send_id
    old = Signer(secret_key, salt=_SALT)
    for found, signature in _OLD_TOKEN.findall(addresses):
        send_id = str(found).lower()
        expected = old.get_signature(send_id).decode().lower()
        if hmac.compare_digest(signature.lower(), expected):
            return send_id
    return None
