"""Resend signs with Svix: HMAC-SHA256 of "id.timestamp.body", base64, key from whsec_...

The signature covers the body; the timestamp must be within `MAX_AGE` of now, as
Svix advises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import partial

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Malformed,
    Refused,
    Service,
    array,
    check_age,
    obj,
    parse_json,
    parse_time,
    same,
    send_id_of,
    text,
)

SECRET = "RESEND_WEBHOOK_SECRET"
MAX_AGE = 300
_TRANSIENT = ("transient", "temporary", "undetermined")


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    secret = context.secret(SECRET)
    message_id = incoming.headers.get("svix-id", "")
    timestamp = incoming.headers.get("svix-timestamp", "")
    signatures = incoming.headers.get("svix-signature", "")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        raise Refused("unreadable secret") from None
    check_age(parse_time(timestamp), MAX_AGE)
    signed = f"{message_id}.{timestamp}.".encode() + incoming.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in signatures.split() if part.startswith("v1,")]
    if not message_id or not any(same(expected, candidate) for candidate in given):
        raise Refused("bad signature")
    payload = obj(parse_json(incoming.body))
    data = obj(payload.get("data"))
    if not data:
        raise Malformed("no data")
    kind = payload.get("type")
    recipients = array(data.get("to")) or [data.get("to")]
    event = partial(
        Event,
        service="resend",
        send_id=send_id_of(data.get("tags"), data.get("headers")),
        provider_id=text(data.get("email_id")) or None,
    )
    bounce = obj(data.get("bounce"))
    events: list[Event] = []
    for email in (text(r) for r in recipients if r):
        once = partial(event, event_id=f"{message_id}:{email}", email=email)
        if kind == "email.delivered":
            events.append(once(kind="delivered"))
        elif kind == "email.bounced":
            hard = text(bounce.get("type")).lower() not in _TRANSIENT
            events.append(once(kind="bounced", hard=hard, detail=text(bounce.get("message"))[:500]))
        elif kind == "email.complained":
            events.append(once(kind="complained"))
    return events


SERVICE = Service("resend", (SECRET,), normalise, max_age=MAX_AGE)
