"""Mailchimp Transactional (Mandrill): form-posted `mandrill_events`, signed with the webhook key.

The signature covers the URL and the form; Mandrill signs no timestamp, so the
events' own `ts` (inside the signed form) stands for one: a batch whose newest
event is older than `MAX_AGE` is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Kind,
    Malformed,
    Refused,
    Service,
    check_age,
    obj,
    parse_json,
    same,
    send_id_of,
    text,
)

KEY = "MANDRILL_WEBHOOK_KEY"
MAX_AGE = 3600
"""Mandrill batches events and retries a failed batch for a while: an hour of slack."""

_KINDS: dict[str, tuple[Kind, bool]] = {
    "send": ("delivered", False),
    "hard_bounce": ("bounced", True),
    "soft_bounce": ("bounced", False),
    "spam": ("complained", False),
    "unsub": ("unsubscribed", False),
}


def mandrill_signature(key: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Mandrill-Signature: base64 HMAC-SHA1 of the URL followed by each POST key and value, sorted by key."""
    signed = url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    key = context.secret(KEY)
    try:
        params = parse_qsl(incoming.body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise Refused("undecodable body") from None
    expected = mandrill_signature(key, incoming.url, params)
    if not same(expected, incoming.headers.get("x-mandrill-signature", "")):
        raise Refused("bad signature")
    batch = parse_json(dict(params).get("mandrill_events", "[]").encode())
    if not isinstance(batch, list):
        raise Malformed("mandrill_events is not a JSON array")
    items = [item for item in batch if isinstance(item, dict)]
    times = [item["ts"] for item in items if isinstance(item.get("ts"), int | float)]
    if len(times) < len(items):
        raise Refused("an event without ts")
    if times:
        check_age(max(times), MAX_AGE)
    events: list[Event] = []
    for item in items:
        if item.get("event") not in _KINDS:
            continue
        kind, hard = _KINDS[item["event"]]
        msg = obj(item.get("msg"))
        provider_id = text(msg.get("_id") or item.get("_id"))
        events.append(
            Event(
                service="mandrill",
                event_id=f"{item['event']}:{provider_id}:{text(item.get('ts'))}",
                kind=kind,
                email=text(msg.get("email")),
                hard=hard,
                send_id=send_id_of(msg.get("metadata")),
                provider_id=provider_id or None,
                detail=text(msg.get("bounce_description") or msg.get("diag"))[:500],
            )
        )
    return events


SERVICE = Service("mandrill", (KEY,), normalise, max_age=MAX_AGE)
