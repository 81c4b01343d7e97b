"""One message from the bounce mailbox, read into events.

- Delivery status notifications (RFC 3464) and the common non-standard bounce
  formats: flufl.bounce finds the failed addresses, permanent or temporary. The
  delivery is found by the X-Campaign-Send-Id the bounce quotes from the original,
  or by a signed VERP return path; the bounce counts only for that delivery's
  recipient, so a forged bounce cannot suppress anyone else.
- Abuse feedback reports (ARF, RFC 5965): a complaint, matched the same way.
- Unsubscribe requests to the List-Unsubscribe mailto: the unsubscribe link's
  signed token in the subject (or after a "+" in the address) names the person.

Anything else raises `Unreadable`: the message is left where it is and reported.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from flufl.bounce import all_failures
from sqlalchemy import Engine, select

from campaign.audience import Store
from campaign.links import BadLink, Links
from campaign.mailbox import verp
from campaign.send.ledger import deliveries
from campaign.web.webhooks.base import Event

_SEND_ID = re.compile(rb"X-Campaign-Send-Id:[ \t]*([0-9a-f]{32})\b", re.IGNORECASE)
_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_.-]{20,})", re.IGNORECASE)
_UNSUBSCRIBE_ADDRESS = re.compile(r"unsubscribe\+([A-Za-z0-9_.-]{20,})@", re.IGNORECASE)
_ADDRESS_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Return-Path")
_COMPLAINTS = {"abuse", "fraud", "virus", "other"}


class Unreadable(Exception):
    """Nothing we can act on, or nothing we can trust: left in the mailbox, reported."""


class Reader:
    """Reads messages against the ledger, the audience and the workspace's signing key."""

    def __init__(self, engine: Engine, links: Links, secret_key: str) -> None:
        self.engine = engine
        self.links = links
        self.secret_key = secret_key
        self.store = Store(engine)

    def events(self, raw: bytes) -> list[Event]:
        """The events `raw` reports; Unreadable when there are none to trust."""
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        reference = _message_reference(message, raw)
        if _report_type(message) == "feedback-report":
            return [self._complaint(message, raw)]
        temporary, permanent = all_failures(message)
        if temporary or permanent:
            return [self._bounce(message, raw, reference, temporary, permanent)]
        unsubscribe = self._unsubscribe(message)
        if unsubscribe is not None:
            return [unsubscribe]
        raise Unreadable("not a bounce, a feedback report or an unsubscribe request")

    def _delivery(self, message: email.message.Message, raw: bytes) -> _Delivery | None:
        """The delivery the message is about: a signed VERP return path first, else the
        X-Campaign-Send-Id quoted from the original."""
        signed = verp.send_id_of(_addresses(message), self.secret_key)
        quoted = [m.decode() for m in _SEND_ID.findall(raw)]
        quoted += [m.decode() for part in _decoded_parts(message) for m in _SEND_ID.findall(part)]
        candidates = [(signed, True)] if signed else []
        candidates += [(send_id, False) for send_id in dict.fromkeys(quoted)]
        for send_id, by_verp in candidates:
            with self.engine.connect() as connection:
                recipient = connection.execute(
                    select(deliveries.c.email).where(deliveries.c.send_id == send_id)
                ).scalar()
            if recipient is not None:
                return _Delivery(send_id, str(recipient), by_verp)
        return None

    def _bounce(
        self,
        message: email.message.Message,
        raw: bytes,
        reference: str,
        temporary: frozenset[bytes],
        permanent: frozenset[bytes],
    ) -> Event:
        found = self._delivery(message, raw)
        failed = sorted(a.decode(errors="replace") for a in temporary | permanent)
        if found is None:
            raise Unreadable(
                f"a bounce for {', '.join(failed)} that names no delivery of ours "
                "(no X-Campaign-Send-Id quoted, no VERP return path)"
            )
        send_id, recipient = found.send_id, found.recipient
        hard_set = {a.decode(errors="replace").lower() for a in permanent}
        soft_set = {a.decode(errors="replace").lower() for a in temporary}
        if recipient.lower() in hard_set | soft_set:
            hard = recipient.lower() in hard_set
        elif found.by_verp:  # the relay reports the address it forwarded to: trust the VERP
            hard = bool(permanent)
        else:
            raise Unreadable(
                f"a bounce for {', '.join(failed)}, not for {recipient} of send {send_id}"
            )
        subject = str(message.get("Subject", ""))
        return Event(
            service="mailbox:dsn",
            # A hard bounce once per delivery; each soft one counts (the third suppresses).
            event_id=f"hard:{send_id}" if hard else f"soft:{send_id}:{reference}",
            kind="bounced",
            email=recipient,
            hard=hard,
            send_id=send_id,
            detail=f"bounce mail: {subject}"[:500],
        )

    def _complaint(self, message: email.message.Message, raw: bytes) -> Event:
        report = next(
            (p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None
        )
        fields = _report_fields(report) if report is not None else {}
        feedback = fields.get("feedback-type", "").lower()
        if feedback not in _COMPLAINTS:
            raise Unreadable(f"a feedback report of type {feedback or 'unknown'!r}")
        found = self._delivery(message, raw)
        if found is None:
            raise Unreadable("a feedback report that names no delivery of ours")
        send_id, recipient = found.send_id, found.recipient
        return Event(
            service="mailbox:arf",
            event_id=f"arf:{send_id}",
            kind="complained",
            email=recipient,
            send_id=send_id,
            detail=f"feedback report: {feedback}",
        )

    def _unsubscribe(self, message: email.message.Message) -> Event | None:
        subject = _header_text(message.get("Subject", ""))
        tokens = _UNSUBSCRIBE_SUBJECT.findall(subject) + _UNSUBSCRIBE_ADDRESS.findall(
            _addresses(message)
        )
        if not tokens:
            return None
        for token in tokens:
            try:
                claims = self.links.verify("unsubscribe", token)
            except BadLink:
                continue
            subscriber = self.store.get(claims.subscriber)
            if subscriber is None:
                raise Unreadable("an unsubscribe request for someone no longer in the audience")
            return Event(
                service="mailbox:unsubscribe",
                event_id=f"unsubscribe:{claims.subscriber}",
                kind="unsubscribed",
                email=subscriber.email,
                detail=f"mailto unsubscribe, campaign {claims.campaign}",
            )
        raise Unreadable("an unsubscribe request whose token is not valid (or has expired)")


@dataclass(frozen=True, slots=True)
class _Delivery:
    send_id: str
    recipient: str
    by_verp: bool


def _addresses(message: email.message.Message) -> str:
    """The addresses the message was delivered to, where a VERP or unsubscribe token rides."""
    return " ".join(str(v) for h in _ADDRESS_HEADERS for v in message.get_all(h, []))


def _report_type(message: email.message.Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "")).lower()


def _report_fields(part: email.message.Message) -> dict[str, str]:
    """The "Name: value" fields of a message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed as a message: its headers are the fields
        return {
            k.lower(): str(v).strip()
            for item in payload
            if isinstance(item, email.message.Message)
            for k, v in item.items()
        }
    text = payload if isinstance(payload, str) else ""
    parsed = email.message_from_string(text)
    return {k.lower(): str(v).strip() for k, v in parsed.items()}


def _decoded_parts(message: email.message.Message) -> Iterator[bytes]:
    """Each leaf part's decoded bytes (a bounce may quote the original in base64)."""
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield payload


def _message_reference(message: email.message.Message, raw: bytes) -> str:
    message_id = str(message.get("Message-ID", "")).strip()
    return message_id[:200] or hashlib.sha256(raw).hexdigest()


def _header_text(value: object) -> str:
    return str(email.header.make_header(email.header.decode_header(str(value))))
