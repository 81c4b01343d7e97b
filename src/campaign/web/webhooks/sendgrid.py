"""SendGrid's signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + raw body.

The signature covers the body; the timestamp must be within `MAX_AGE` of now, so a
captured request cannot be replayed later (SendGrid itself sets no limit).
"""

from __future__ import annotations

import base64
import binascii
from functools import partial

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Kind,
    Malformed,
    Refused,
    Service,
    check_age,
    log,
    parse_json,
    parse_time,
    send_id_of,
    text,
)

PUBLIC_KEY = "SENDGRID_WEBHOOK_PUBLIC_KEY"
MAX_AGE = 600

_DROPPED: dict[str, tuple[Kind, bool]] = {
    "Bounced Address": ("bounced", True),
    "Invalid": ("bounced", True),
    "Spam Reporting Address": ("complained", False),
    "Unsubscribed Address": ("unsubscribed", False),
}


def _key(value: str) -> ec.EllipticCurvePublicKey:
    try:
        if "BEGIN PUBLIC KEY" in value:
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(value))
    except (ValueError, binascii.Error):
        log.warning("webhook refused: %s is not a public key", PUBLIC_KEY)
        raise Refused("unreadable verification key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Refused(f"{PUBLIC_KEY} is not an ECDSA key")
    return key


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    key = _key(context.secret(PUBLIC_KEY))
    signature = incoming.headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = incoming.headers.get("x-twilio-email-event-webhook-timestamp", "")
    try:
        key.verify(
            base64.b64decode(signature),
            timestamp.encode() + incoming.body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("bad signature") from None
    check_age(parse_time(timestamp), MAX_AGE)
    batch = parse_json(incoming.body)
    if not isinstance(batch, list):
        raise Malformed("expected a JSON array of events")
    events: list[Event] = []
    for item in batch:
        if not isinstance(item, dict):
            continue
        name = item.get("event")
        event = partial(
            Event,
            service="sendgrid",
            event_id=text(item.get("sg_event_id")),
            email=text(item.get("email")),
            send_id=send_id_of(item),
            provider_id=text(item.get("sg_message_id")).split(".")[0] or None,
        )
        if name == "delivered":
            events.append(event(kind="delivered"))
        elif name == "bounce":
            hard = item.get("type", "bounce") != "blocked"
            events.append(event(kind="bounced", hard=hard, detail=text(item.get("reason"))[:500]))
        elif name == "spamreport":
            events.append(event(kind="complained"))
        elif name in ("unsubscribe", "group_unsubscribe"):
            events.append(event(kind="unsubscribed"))
        elif name == "dropped" and item.get("reason") in _DROPPED:
            kind, hard = _DROPPED[item["reason"]]
            events.append(event(kind=kind, hard=hard, detail=f"dropped: {item['reason']}"))
    return events


SERVICE = Service("sendgrid", (PUBLIC_KEY,), normalise, max_age=MAX_AGE)
