"""Brevo: the webhook's token as `Authorization: Bearer`, or Basic credentials in its URL.

A shared secret, compared in constant time. Brevo signs nothing, so a captured
request can only be replayed as it was, which recording counts once.
"""

from __future__ import annotations

import json
from typing import Any

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Kind,
    Refused,
    Service,
    basic_credentials,
    parse_json,
    same,
    send_id_of,
    text,
)

TOKEN = "BREVO_WEBHOOK_TOKEN"

_KINDS: dict[str, tuple[Kind, bool]] = {
    "delivered": ("delivered", False),
    "hard_bounce": ("bounced", True),
    "invalid_email": ("bounced", True),
    "soft_bounce": ("bounced", False),
    "spam": ("complained", False),
    "unsubscribed": ("unsubscribed", False),
}


def _send_id(item: dict[str, Any]) -> str | None:
    """X-Mailin-custom is our send id, or a JSON object holding it."""
    custom = item.get("X-Mailin-custom")
    custom_data = None
    if isinstance(custom, str) and custom.startswith("{"):
        try:
            custom_data = json.loads(custom)
        except ValueError:
            custom_data = None
    return send_id_of(custom_data, item.get("headers")) or (
        custom if isinstance(custom, str) and custom_data is None and custom else None
    )


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    expected = context.secret(TOKEN)
    scheme, _, value = incoming.headers.get("authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else basic_credentials(incoming.headers)
    if given is None or not same(given, expected):
        raise Refused("wrong token")
    payload = parse_json(incoming.body)
    items = payload if isinstance(payload, list) else [payload]
    events: list[Event] = []
    for item in items:
        if not isinstance(item, dict) or item.get("event") not in _KINDS:
            continue
        kind, hard = _KINDS[item["event"]]
        message_id = text(item.get("message-id"))
        email = text(item.get("email"))
        at = text(item.get("ts_event") or item.get("ts"))
        events.append(
            Event(
                service="brevo",
                event_id=f"{item['event']}:{message_id}:{email}:{at}",
                kind=kind,
                email=email,
                hard=hard,
                send_id=_send_id(item),
                provider_id=message_id or None,
                detail=text(item.get("reason"))[:500],
            )
        )
    return events


SERVICE = Service("brevo", (TOKEN,), normalise, signs_body=False)
