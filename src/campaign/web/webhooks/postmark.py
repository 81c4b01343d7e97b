"""Postmark: Basic auth credentials put in the webhook URL; one JSON record per request.

A shared secret, compared in constant time. Postmark signs nothing, so a captured
request can only be replayed as it was, which recording counts once.
"""

from __future__ import annotations

from functools import partial

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Malformed,
    Refused,
    Service,
    basic_credentials,
    parse_json,
    same,
    send_id_of,
    text,
)

AUTH = "POSTMARK_WEBHOOK_AUTH"

HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
SOFT = {"Transient", "SoftBounce", "DnsError", "Unknown", "Blocked", "SMTPApiError", "DMARCPolicy"}
COMPLAINT = {"SpamComplaint", "SpamNotification"}


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    expected = context.secret(AUTH)
    given = basic_credentials(incoming.headers)
    if given is None or not same(given, expected):
        raise Refused("wrong credentials")
    record = parse_json(incoming.body)
    if not isinstance(record, dict):
        raise Malformed("expected one JSON object")
    kind = record.get("RecordType")
    message_id = text(record.get("MessageID"))
    event = partial(
        Event,
        service="postmark",
        send_id=send_id_of(record.get("Metadata")),
        provider_id=message_id or None,
    )
    if kind == "Delivery":
        email = text(record.get("Recipient"))
        return [event(event_id=f"delivery:{message_id}:{email}", kind="delivered", email=email)]
    if kind == "SpamComplaint":
        return [
            event(
                event_id=f"complaint:{record.get('ID')}",
                kind="complained",
                email=text(record.get("Email")),
            )
        ]
    if kind == "Bounce":
        bounce_type = text(record.get("Type"))
        bounce = partial(
            event,
            event_id=f"bounce:{record.get('ID')}",
            email=text(record.get("Email")),
            detail=f"{bounce_type}: {text(record.get('Description'))}"[:500],
        )
        if bounce_type in COMPLAINT:
            return [bounce(kind="complained")]
        if bounce_type == "Unsubscribe":
            return [bounce(kind="unsubscribed")]
        if bounce_type in HARD or bounce_type in SOFT:
            return [bounce(kind="bounced", hard=bounce_type in HARD)]
        return []  # auto-responders, address changes, challenge mails: not delivery failures
    if kind == "SubscriptionChange" and record.get("SuppressSending"):
        email = text(record.get("Recipient"))
        reason = text(record.get("SuppressionReason"))
        change = partial(
            event,
            event_id=f"subscription:{message_id}:{email}:{record.get('ChangedAt')}",
            email=email,
            detail=reason,
        )
        if reason == "HardBounce":
            return [change(kind="bounced", hard=True)]
        if reason == "SpamComplaint":
            return [change(kind="complained")]
        return [change(kind="unsubscribed")]
    return []


SERVICE = Service("postmark", (AUTH,), normalise, signs_body=False)
