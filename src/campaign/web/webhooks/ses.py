"""Amazon SES event notifications, delivered by SNS: SNS's RSA signature, a topic
allow-list, subscription confirmation.

The signature covers the message and its Timestamp, which must be within `MAX_AGE`
of now: an hour, since SNS keeps the first Timestamp through its delivery retries.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Malformed,
    Refused,
    Service,
    array,
    check_age,
    log,
    obj,
    parse_json,
    send_id_of,
    text,
)

TOPIC_ARN = "SES_SNS_TOPIC_ARN"
SIGNING_CERT = "SES_SNS_SIGNING_CERT"
MAX_AGE = 3600

SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")

_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION,
    "UnsubscribeConfirmation": _CONFIRMATION,
}


def _string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text that SNS signs: chosen fields as "name\\nvalue\\n", in order."""
    fields = _FIELDS.get(text(message.get("Type")))
    if fields is None:
        raise Refused("unknown SNS message type")
    parts = []
    for name in fields:
        if name in message and message[name] is not None:
            parts.append(f"{name}\n{message[name]}\n")
        elif name != "Subject":
            raise Refused(f"SNS message without {name}")
    return "".join(parts).encode()


def _trusted_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and bool(SNS_CERT_HOST.match(parts.hostname or ""))
        and parts.port is None
    )


async def _certificate(message: Mapping[str, Any], context: Context) -> x509.Certificate:
    configured = context.env.get(SIGNING_CERT, "").strip()
    if configured:
        pem = (
            configured.encode()
            if "BEGIN CERTIFICATE" in configured
            else Path(configured).read_bytes()
        )
    else:
        url = text(message.get("SigningCertURL"))
        if not _trusted_url(url) or not url.endswith(".pem"):
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


def _timestamp(message: Mapping[str, Any]) -> float:
    try:
        return datetime.fromisoformat(text(message.get("Timestamp"))).timestamp()
    except ValueError:
        raise Refused("unreadable Timestamp") from None


async def _verify(message: Mapping[str, Any], context: Context) -> None:
    topics = {t.strip() for t in context.secret(TOPIC_ARN).split(",") if t.strip()}
    if message.get("TopicArn") not in topics:
        raise Refused("unexpected TopicArn")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(
        text(message.get("SignatureVersion"))
    )
    if algorithm is None:
        raise Refused("unknown SignatureVersion")
    certificate = await _certificate(message, context)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("the signing certificate is not RSA")
    try:
        signature = base64.b64decode(text(message.get("Signature")), validate=True)
        key.verify(signature, _string_to_sign(message), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("bad signature") from None
    check_age(_timestamp(message), MAX_AGE)


def _recipients(section: Mapping[str, Any], key: str) -> list[str]:
    return [text(obj(r).get("emailAddress")) for r in array(section.get(key))]


def _events(sns_id: str, notification: Mapping[str, Any]) -> list[Event]:
    kind = notification.get("eventType") or notification.get("notificationType")
    mail = obj(notification.get("mail"))
    event = partial(
        Event,
        service="ses",
        send_id=send_id_of(mail.get("headers"), mail.get("tags")),
        provider_id=text(mail.get("messageId")) or None,
    )
    if kind == "Bounce":
        bounce = obj(notification.get("bounce"))
        feedback = text(bounce.get("feedbackId")) or sns_id
        return [
            event(
                event_id=f"{feedback}:{email}",
                kind="bounced",
                email=email,
                hard=bounce.get("bounceType") == "Permanent",
                detail=f"{text(bounce.get('bounceType'))}/{text(bounce.get('bounceSubType'))}",
            )
            for email in _recipients(bounce, "bouncedRecipients")
        ]
    if kind == "Complaint":
        complaint = obj(notification.get("complaint"))
        feedback = text(complaint.get("feedbackId")) or sns_id
        return [
            event(
                event_id=f"{feedback}:{email}",
                kind="complained",
                email=email,
                detail=text(complaint.get("complaintFeedbackType")),
            )
            for email in _recipients(complaint, "complainedRecipients")
        ]
    if kind == "Delivery":
        return [
            event(
                event_id=f"delivery:{mail.get('messageId')}:{email}",
                kind="delivered",
                email=text(email),
            )
            for email in array(obj(notification.get("delivery")).get("recipients"))
        ]
    return []


async def normalise(incoming: Incoming, context: Context) -> list[Event]:
    message = parse_json(incoming.body)
    if not isinstance(message, dict):
        raise Refused("not an SNS message")
    await _verify(message, context)
    if message.get("Type") == "SubscriptionConfirmation":
        url = text(message.get("SubscribeURL"))
        if not _trusted_url(url):
            raise Malformed("SubscribeURL is not an Amazon SNS URL")
        response = await context.http.get(url)
        if response.status_code != 200:
            raise Malformed(f"confirming the subscription failed with {response.status_code}")
        context.confirmed.append(text(message.get("TopicArn")))
        log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
        return []
    if message.get("Type") != "Notification":
        return []
    try:
        notification = json.loads(text(message.get("Message")))
    except ValueError:
        raise Malformed("the SNS Message is not JSON") from None
    if not isinstance(notification, dict):
        raise Malformed("the SNS Message is not a JSON object")
    return _events(text(message.get("MessageId")), notification)


SERVICE = Service("ses", (TOPIC_ARN, SIGNING_CERT), normalise, max_age=MAX_AGE)
