"""The mail services' webhooks: verify, normalise, record once.

Each service has one small normaliser: it checks the request the way the service
documents (a signature, or a shared secret) and turns its payload into `Event`s
of four kinds: delivered, bounced (hard or soft), complained, unsubscribed.
Everything else (opens, clicks, deferrals) is ignored. `record` then applies
each event once: a table of (service, event id) pairs makes a replayed or
retried delivery of the same event a no-op.

A request that fails verification raises `Refused` (answered 401) before anything
is read from its payload; a verified one that cannot be parsed raises `Malformed`
(400). Secrets come from environment variables, listed in `SECRETS`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError

from campaign.audience import addresses
from campaign.message import SEND_ID_HEADER
from campaign.web.tables import webhook_events

log = logging.getLogger("campaign.web.webhooks")

Kind = Literal["delivered", "bounced", "complained", "unsubscribed"]

SECRETS: dict[str, tuple[str, ...]] = {
    "postmark": ("POSTMARK_WEBHOOK_AUTH",),
    "mailgun": ("MAILGUN_WEBHOOK_SIGNING_KEY",),
    "sendgrid": ("SENDGRID_WEBHOOK_PUBLIC_KEY",),
    "ses": ("SES_SNS_TOPIC_ARN", "SES_SNS_SIGNING_CERT"),
    "resend": ("RESEND_WEBHOOK_SECRET",),
    "brevo": ("BREVO_WEBHOOK_TOKEN",),
    "mandrill": ("MANDRILL_WEBHOOK_KEY",),
}
"""Per service, the environment variables it reads (the first is required)."""

SVIX_TOLERANCE_SECONDS = 300
"""Resend (Svix) signs a timestamp; older or newer than this is refused, as Svix advises."""

SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


class Refused(Exception):
    """Missing or wrong signature or secret: answered 401, nothing changes."""


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


CertFetcher = Callable[[str], Awaitable[bytes]]


@dataclass
class Context:
    """What the normalisers need besides the request: secrets and outbound HTTP (SNS only)."""

    env: Mapping[str, str]
    http: httpx.AsyncClient
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


# ---------------------------------------------------------------- helpers


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None


def _same(a: str | bytes, b: str | bytes) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def _basic_credentials(headers: Mapping[str, str]) -> str | None:
    """The "user:password" of a Basic Authorization header."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


_SEND_ID_KEYS = ("send_id", "campaign_send_id", SEND_ID_HEADER, SEND_ID_HEADER.lower())


def _send_id(*sources: Any) -> str | None:
    """Our send id from the metadata a service echoes back (custom args, tags, headers)."""
    for source in sources:
        if isinstance(source, Mapping):
            for key in _SEND_ID_KEYS:
                if isinstance(source.get(key), str) and source[key]:
                    return str(source[key])
        elif isinstance(source, list):  # [{"name": ..., "value": ...}]
            for item in source:
                if isinstance(item, Mapping) and str(item.get("name", "")).lower() in {
                    k.lower() for k in _SEND_ID_KEYS
                }:
                    value = item.get("value")
                    if isinstance(value, list):
                        value = value[0] if value else None
                    if isinstance(value, str) and value:
                        return value
    return None


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: payloads are read defensively."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- Postmark

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
POSTMARK_SOFT = {
    "Transient",
    "SoftBounce",
    "DnsError",
    "Unknown",
    "Blocked",
    "SMTPApiError",
    "DMARCPolicy",
}
POSTMARK_COMPLAINT = {"SpamComplaint", "SpamNotification"}


async def postmark(incoming: Incoming, context: Context) -> list[Event]:
    """Postmark: Basic auth credentials put in the webhook URL; one JSON record per request."""
    expected = context.secret("POSTMARK_WEBHOOK_AUTH")
    given = _basic_credentials(incoming.headers)
    if given is None or not _same(given, expected):
        raise Refused("wrong credentials")
    record = _json(incoming.body)
    if not isinstance(record, dict):
        raise Malformed("expected one JSON object")
    kind = record.get("RecordType")
    metadata = record.get("Metadata")
    message_id = _str(record.get("MessageID"))
    event = partial(
        Event, service="postmark", send_id=_send_id(metadata), provider_id=message_id or None
    )
    if kind == "Delivery":
        email = _str(record.get("Recipient"))
        return [event(event_id=f"delivery:{message_id}:{email}", kind="delivered", email=email)]
    if kind == "SpamComplaint":
        return [
            event(
                event_id=f"complaint:{record.get('ID')}",
                kind="complained",
                email=_str(record.get("Email")),
            )
        ]
    if kind == "Bounce":
        bounce_type = _str(record.get("Type"))
        bounce = partial(
            event,
            event_id=f"bounce:{record.get('ID')}",
            email=_str(record.get("Email")),
            detail=f"{bounce_type}: {_str(record.get('Description'))}"[:500],
        )
        if bounce_type in POSTMARK_COMPLAINT:
            return [bounce(kind="complained")]
        if bounce_type == "Unsubscribe":
            return [bounce(kind="unsubscribed")]
        if bounce_type in POSTMARK_HARD or bounce_type in POSTMARK_SOFT:
            return [bounce(kind="bounced", hard=bounce_type in POSTMARK_HARD)]
        return []  # auto-responders, address changes, challenge mails: not delivery failures
    if kind == "SubscriptionChange" and record.get("SuppressSending"):
        email = _str(record.get("Recipient"))
        reason = _str(record.get("SuppressionReason"))
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


# ---------------------------------------------------------------- Mailgun


async def mailgun(incoming: Incoming, context: Context) -> list[Event]:
    """Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key, in the JSON body."""
    key = context.secret("MAILGUN_WEBHOOK_SIGNING_KEY")
    payload = _dict(_json(incoming.body) if incoming.body else {})
    signature = _dict(payload.get("signature"))
    if not signature:
        raise Refused("no signature")
    signed = f"{_str(signature.get('timestamp'))}{_str(signature.get('token'))}".encode()
    expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
    if not _same(expected, _str(signature.get("signature"))):
        raise Refused("bad signature")
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise Malformed("no event-data")
    name = data.get("event")
    headers = _dict(_dict(data.get("message")).get("headers"))
    event = partial(
        Event,
        service="mailgun",
        event_id=_str(data.get("id")) or _str(signature.get("token")),
        email=_str(data.get("recipient")),
        send_id=_send_id(data.get("user-variables"), headers),
        provider_id=_str(headers.get("message-id")).strip("<>") or None,
    )
    if name == "delivered":
        return [event(kind="delivered")]
    if name == "failed":
        reason = _dict(data.get("delivery-status")).get("description")
        detail = f"{_str(data.get('reason'))}: {_str(reason)}"[:500]
        return [event(kind="bounced", hard=data.get("severity") == "permanent", detail=detail)]
    if name == "complained":
        return [event(kind="complained")]
    if name == "unsubscribed":
        return [event(kind="unsubscribed")]
    return []


# ---------------------------------------------------------------- SendGrid


def _sendgrid_key(value: str) -> ec.EllipticCurvePublicKey:
    try:
        if "BEGIN PUBLIC KEY" in value:
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(value))
    except (ValueError, binascii.Error):
        log.warning("webhook refused: SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key")
        raise Refused("unreadable verification key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Refused("SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA key")
    return key


_SENDGRID_DROPPED: dict[str, tuple[Kind, bool]] = {
    "Bounced Address": ("bounced", True),
    "Invalid": ("bounced", True),
    "Spam Reporting Address": ("complained", False),
    "Unsubscribed Address": ("unsubscribed", False),
}


async def sendgrid(incoming: Incoming, context: Context) -> list[Event]:
    """SendGrid's signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + raw body."""
    key = _sendgrid_key(context.secret("SENDGRID_WEBHOOK_PUBLIC_KEY"))
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
    batch = _json(incoming.body)
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
            event_id=_str(item.get("sg_event_id")),
            email=_str(item.get("email")),
            send_id=_send_id(item),
            provider_id=_str(item.get("sg_message_id")).split(".")[0] or None,
        )
        if name == "delivered":
            events.append(event(kind="delivered"))
        elif name == "bounce":
            hard = item.get("type", "bounce") != "blocked"
            events.append(event(kind="bounced", hard=hard, detail=_str(item.get("reason"))[:500]))
        elif name == "spamreport":
            events.append(event(kind="complained"))
        elif name in ("unsubscribe", "group_unsubscribe"):
            events.append(event(kind="unsubscribed"))
        elif name == "dropped" and item.get("reason") in _SENDGRID_DROPPED:
            kind, hard = _SENDGRID_DROPPED[item["reason"]]
            events.append(event(kind=kind, hard=hard, detail=f"dropped: {item['reason']}"))
    return events


# ---------------------------------------------------------------- Amazon SES through SNS

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


def _sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text that SNS signs: chosen fields as "name\\nvalue\\n", in order."""
    fields = _SNS_FIELDS.get(_str(message.get("Type")))
    if fields is None:
        raise Refused("unknown SNS message type")
    parts = []
    for name in fields:
        if name in message and message[name] is not None:
            parts.append(f"{name}\n{message[name]}\n")
        elif name != "Subject":
            raise Refused(f"SNS message without {name}")
    return "".join(parts).encode()


def _trusted_sns_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and bool(SNS_CERT_HOST.match(parts.hostname or ""))
        and parts.port is None
    )


async def _sns_certificate(message: Mapping[str, Any], context: Context) -> x509.Certificate:
    configured = context.env.get("SES_SNS_SIGNING_CERT", "").strip()
    if configured:
        pem = (
            configured.encode()
            if "BEGIN CERTIFICATE" in configured
            else Path(configured).read_bytes()
        )
    else:
        url = _str(message.get("SigningCertURL"))
        if not _trusted_sns_url(url) or not url.endswith(".pem"):
            raise Refused("SigningCertURL is not an Amazon SNS URL")
        try:
            pem = await context.fetch_cert(url)
        except httpx.HTTPError as exc:
            log.warning("could not fetch the SNS signing certificate: %s", exc)
            raise Refused("signing certificate unavailable") from None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Refused("unreadable signing certificate") from None


async def _verify_sns(message: Mapping[str, Any], context: Context) -> None:
    topics = {t.strip() for t in context.secret("SES_SNS_TOPIC_ARN").split(",") if t.strip()}
    if message.get("TopicArn") not in topics:
        raise Refused("unexpected TopicArn")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(
        _str(message.get("SignatureVersion"))
    )
    if algorithm is None:
        raise Refused("unknown SignatureVersion")
    certificate = await _sns_certificate(message, context)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("the signing certificate is not RSA")
    try:
        signature = base64.b64decode(_str(message.get("Signature")), validate=True)
        key.verify(signature, _sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("bad signature") from None


def _ses_events(sns_id: str, notification: Mapping[str, Any]) -> list[Event]:
    kind = notification.get("eventType") or notification.get("notificationType")
    mail = _dict(notification.get("mail"))
    event = partial(
        Event,
        service="ses",
        send_id=_send_id(mail.get("headers"), mail.get("tags")),
        provider_id=_str(mail.get("messageId")) or None,
    )
    if kind == "Bounce":
        bounce = _dict(notification.get("bounce"))
        feedback = _str(bounce.get("feedbackId")) or sns_id
        return [
            event(
                event_id=f"{feedback}:{email}",
                kind="bounced",
                email=email,
                hard=bounce.get("bounceType") == "Permanent",
                detail=f"{_str(bounce.get('bounceType'))}/{_str(bounce.get('bounceSubType'))}",
            )
            for email in (
                _str(_dict(r).get("emailAddress")) for r in _list(bounce.get("bouncedRecipients"))
            )
        ]
    if kind == "Complaint":
        complaint = _dict(notification.get("complaint"))
        feedback = _str(complaint.get("feedbackId")) or sns_id
        return [
            event(
                event_id=f"{feedback}:{email}",
                kind="complained",
                email=email,
                detail=_str(complaint.get("complaintFeedbackType")),
            )
            for email in (
                _str(_dict(r).get("emailAddress"))
                for r in _list(complaint.get("complainedRecipients"))
            )
        ]
    if kind == "Delivery":
        return [
            event(
                event_id=f"delivery:{mail.get('messageId')}:{email}",
                kind="delivered",
                email=_str(email),
            )
            for email in _list(_dict(notification.get("delivery")).get("recipients"))
        ]
    return []


async def ses(incoming: Incoming, context: Context) -> list[Event]:
    """Amazon SES event notifications, delivered by SNS: SNS's RSA signature, topic allow-list,
    subscription confirmation."""
    message = _json(incoming.body)
    if not isinstance(message, dict):
        raise Refused("not an SNS message")
    await _verify_sns(message, context)
    if message.get("Type") == "SubscriptionConfirmation":
        url = _str(message.get("SubscribeURL"))
        if not _trusted_sns_url(url):
            raise Malformed("SubscribeURL is not an Amazon SNS URL")
        response = await context.http.get(url)
        if response.status_code != 200:
            raise Malformed(f"confirming the subscription failed with {response.status_code}")
        context.confirmed.append(_str(message.get("TopicArn")))
        log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
        return []
    if message.get("Type") != "Notification":
        return []
    try:
        notification = json.loads(_str(message.get("Message")))
    except ValueError:
        raise Malformed("the SNS Message is not JSON") from None
    if not isinstance(notification, dict):
        raise Malformed("the SNS Message is not a JSON object")
    return _ses_events(_str(message.get("MessageId")), notification)


# ---------------------------------------------------------------- Resend (Svix)


async def resend(incoming: Incoming, context: Context) -> list[Event]:
    """Resend signs with Svix: HMAC-SHA256 of "id.timestamp.body", base64, key from whsec_..."""
    secret = context.secret("RESEND_WEBHOOK_SECRET")
    message_id = incoming.headers.get("svix-id", "")
    timestamp = incoming.headers.get("svix-timestamp", "")
    signatures = incoming.headers.get("svix-signature", "")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        sent_at = int(timestamp)
    except (binascii.Error, ValueError):
        raise Refused("bad signature headers or secret") from None
    if abs(time.time() - sent_at) > SVIX_TOLERANCE_SECONDS:
        raise Refused("timestamp outside the tolerance")
    signed = f"{message_id}.{timestamp}.".encode() + incoming.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in signatures.split() if part.startswith("v1,")]
    if not message_id or not any(_same(expected, candidate) for candidate in given):
        raise Refused("bad signature")
    payload = _dict(_json(incoming.body))
    data = _dict(payload.get("data"))
    if not data:
        raise Malformed("no data")
    kind = payload.get("type")
    recipients = _list(data.get("to")) or [data.get("to")]
    event = partial(
        Event,
        service="resend",
        send_id=_send_id(data.get("tags"), data.get("headers")),
        provider_id=_str(data.get("email_id")) or None,
    )
    bounce = _dict(data.get("bounce"))
    events: list[Event] = []
    for email in (_str(r) for r in recipients if r):
        once = partial(event, event_id=f"{message_id}:{email}", email=email)
        if kind == "email.delivered":
            events.append(once(kind="delivered"))
        elif kind == "email.bounced":
            hard = _str(bounce.get("type")).lower() not in (
                "transient",
                "temporary",
                "undetermined",
            )
            events.append(once(kind="bounced", hard=hard, detail=_str(bounce.get("message"))[:500]))
        elif kind == "email.complained":
            events.append(once(kind="complained"))
    return events


# ---------------------------------------------------------------- Brevo

_BREVO: dict[str, tuple[Kind, bool]] = {
    "delivered": ("delivered", False),
    "hard_bounce": ("bounced", True),
    "invalid_email": ("bounced", True),
    "soft_bounce": ("bounced", False),
    "spam": ("complained", False),
    "unsubscribed": ("unsubscribed", False),
}


async def brevo(incoming: Incoming, context: Context) -> list[Event]:
    """Brevo: the webhook's token as `Authorization: Bearer`, or Basic credentials in its URL."""
    expected = context.secret("BREVO_WEBHOOK_TOKEN")
    scheme, _, value = incoming.headers.get("authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else _basic_credentials(incoming.headers)
    if given is None or not _same(given, expected):
        raise Refused("wrong token")
    payload = _json(incoming.body)
    items = payload if isinstance(payload, list) else [payload]
    events: list[Event] = []
    for item in items:
        if not isinstance(item, dict) or item.get("event") not in _BREVO:
            continue
        kind, hard = _BREVO[item["event"]]
        message_id = _str(item.get("message-id"))
        email = _str(item.get("email"))
        event_id = (
            f"{item['event']}:{message_id}:{email}:{_str(item.get('ts_event') or item.get('ts'))}"
        )
        custom = item.get("X-Mailin-custom")
        custom_data = None
        if isinstance(custom, str) and custom.startswith("{"):
            try:
                custom_data = json.loads(custom)
            except ValueError:
                custom_data = None
        send_id = _send_id(custom_data, item.get("headers")) or (
            custom if isinstance(custom, str) and custom_data is None and custom else None
        )
        events.append(
            Event(
                service="brevo",
                event_id=event_id,
                kind=kind,
                email=email,
                hard=hard,
                send_id=send_id,
                provider_id=message_id or None,
                detail=_str(item.get("reason"))[:500],
            )
        )
    return events


# ---------------------------------------------------------------- Mailchimp Transactional (Mandrill)

_MANDRILL: dict[str, tuple[Kind, bool]] = {
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


async def mandrill(incoming: Incoming, context: Context) -> list[Event]:
    """Mailchimp Transactional (Mandrill): form-posted `mandrill_events`, signed with the webhook key."""
    key = context.secret("MANDRILL_WEBHOOK_KEY")
    try:
        params = parse_qsl(incoming.body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise Refused("undecodable body") from None
    expected = mandrill_signature(key, incoming.url, params)
    if not _same(expected, incoming.headers.get("x-mandrill-signature", "")):
        raise Refused("bad signature")
    raw = dict(params).get("mandrill_events", "[]")
    batch = _json(raw.encode())
    if not isinstance(batch, list):
        raise Malformed("mandrill_events is not a JSON array")
    events: list[Event] = []
    for item in batch:
        if not isinstance(item, dict) or item.get("event") not in _MANDRILL:
            continue
        kind, hard = _MANDRILL[item["event"]]
        msg = _dict(item.get("msg"))
        provider_id = _str(msg.get("_id") or item.get("_id"))
        events.append(
            Event(
                service="mandrill",
                event_id=f"{item['event']}:{provider_id}:{_str(item.get('ts'))}",
                kind=kind,
                email=_str(msg.get("email")),
                hard=hard,
                send_id=_send_id(msg.get("metadata")),
                provider_id=provider_id or None,
                detail=_str(msg.get("bounce_description") or msg.get("diag"))[:500],
            )
        )
    return events


NORMALISERS: dict[str, Normaliser] = {
    "postmark": postmark,
    "mailgun": mailgun,
    "sendgrid": sendgrid,
    "ses": ses,
    "resend": resend,
    "brevo": brevo,
    "mandrill": mandrill,
}
"""/webhooks/<name> -> its normaliser. Mailchimp Transactional is `mandrill`."""


# ---------------------------------------------------------------- recording


@dataclass
class Outcome:
    recorded: int = 0
    replayed: int = 0


Apply = Callable[[Event], None]
"""Applies one event to the ledger and the audience (see `campaign.web.app`)."""


def _claim(engine: Engine, event: Event) -> bool:
    """Mark `event` as seen; False when it was already (a replay or a retry)."""
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(webhook_events).values(
                    service=event.service,
                    event_id=event.event_id[:255],
                    received_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        return False
    return True


def _release(engine: Engine, event: Event) -> None:
    with engine.begin() as connection:
        connection.execute(
            delete(webhook_events).where(
                webhook_events.c.service == event.service,
                webhook_events.c.event_id == event.event_id[:255],
            )
        )


def record(engine: Engine, events: list[Event], apply: Apply) -> Outcome:
    """Apply each event once. The claim comes first, so two deliveries of one event racing
    each other apply it once; if applying fails, the claim is released so the service's
    retry can succeed."""
    outcome = Outcome()
    for event in events:
        if not addresses.is_valid(event.email) or not event.event_id:
            continue  # nothing we could suppress or match
        if not _claim(engine, event):
            outcome.replayed += 1
            continue
        try:
            apply(event)
        except BaseException:
            _release(engine, event)
            raise
        outcome.recorded += 1
    return outcome
