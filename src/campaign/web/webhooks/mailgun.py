"""Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key, in the JSON body.

The signature does not cover the event, so, as Mailgun's documentation advises, a
token is used once (stored; the same token with another body is refused) and the
timestamp must be within `MAX_AGE` of now. Stored tokens are pruned once their
timestamps could no longer pass.
"""

from __future__ import annotations

import asyncio
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
    check_age,
    obj,
    parse_json,
    parse_time,
    same,
    send_id_of,
    text,
)
from campaign.web.webhooks.recording import use_token

SIGNING_KEY = "MAILGUN_WEBHOOK_SIGNING_KEY"
MAX_AGE = 300


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    key = context.secret(SIGNING_KEY)
    payload = obj(parse_json(incoming.body) if incoming.body else {})
    signature = obj(payload.get("signature"))
    if not signature:
        raise Refused("no signature")
    timestamp, token = text(signature.get("timestamp")), text(signature.get("token"))
    expected = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not token or not same(expected, text(signature.get("signature"))):
        raise Refused("bad signature")
    check_age(parse_time(timestamp), MAX_AGE)
    # The same token with another body is a captured signature on a forged payload; the
    # same body again is a retry or a replay, which recording counts once.
    if context.engine is None or not await asyncio.to_thread(
        use_token, context.engine, "mailgun", token, incoming.body, MAX_AGE
    ):
        raise Refused("token already used with another body")
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise Malformed("no event-data")
    name = data.get("event")
    headers = obj(obj(data.get("message")).get("headers"))
    event = partial(
        Event,
        service="mailgun",
        event_id=text(data.get("id")) or token,
        email=text(data.get("recipient")),
        send_id=send_id_of(data.get("user-variables"), headers),
        provider_id=text(headers.get("message-id")).strip("<>") or None,
    )
    if name == "delivered":
        return [event(kind="delivered")]
    if name == "failed":
        reason = obj(data.get("delivery-status")).get("description")
        detail = f"{text(data.get('reason'))}: {text(reason)}"[:500]
        return [event(kind="bounced", hard=data.get("severity") == "permanent", detail=detail)]
    if name == "complained":
        return [event(kind="complained")]
    if name == "unsubscribed":
        return [event(kind="unsubscribed")]
    return []


SERVICE = Service("mailgun", (SIGNING_KEY,), normalise, max_age=MAX_AGE, signs_body=False)
