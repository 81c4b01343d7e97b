"""Per-recipient return paths (VERP): `bounces+<send id>.<signature>@domain`.

A relay that returns a message sends the bounce to its envelope sender, so a
signed send id there names the delivery even when the bounce quotes nothing of
the original. The signature (keyed by the workspace's secret key) means nobody
can make a bounce for a delivery they did not receive.
"""

from __future__ import annotations

import re

from itsdangerous import BadSignature, Signer

_SALT = "campaign.verp"
TOKEN = re.compile(r"\+([0-9a-f]{32}\.[A-Za-z0-9_-]+)@")


def _signer(secret_key: str) -> Signer:
    return Signer(secret_key, salt=_SALT)


def return_path(address: str, secret_key: str, send_id: str) -> str:
    """`address` ("bounces@domain") with the signed send id after a "+"."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{_signer(secret_key).sign(send_id).decode()}@{domain}"


def send_id_of(addresses: str, secret_key: str) -> str | None:
    """The send id in the first validly signed VERP address in `addresses`, if any."""
    for token in TOKEN.findall(addresses):
        try:
            return _signer(secret_key).unsign(token).decode()
        except BadSignature:
            continue
    return None
