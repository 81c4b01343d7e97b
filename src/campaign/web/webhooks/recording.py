"""Exactly-once recording: every verified event, whichever way it came (a webhook, an
SMTP reply, a message in the bounce mailbox), reaches the audience and the ledger once.

A table of (service, event id) pairs makes a replayed or retried delivery of the same
event a no-op. Mailgun's used tokens are kept here too, for as long as their
timestamps could pass the replay window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from campaign.audience import Store, addresses
from campaign.send import ledger
from campaign.web.tables import webhook_events, webhook_tokens
from campaign.web.webhooks.base import Event


@dataclass
class Outcome:
    recorded: int = 0
    replayed: int = 0


def source_of(event: Event) -> str:
    """The audience history's source: "webhook:<service>", or the event's own service
    when it names its channel ("smtp:reply", "mailbox:dsn")."""
    return event.service if ":" in event.service else f"webhook:{event.service}"


def apply_event(store: Store, event: Event) -> None:
    """One verified event: the suppression in the audience, then the ledger."""
    source = source_of(event)
    if event.kind == "bounced":
        store.record_bounce(event.email, hard=event.hard, source=source, detail=event.detail)
    elif event.kind == "complained":
        store.record_complaint(event.email, source=source, detail=event.detail)
    elif event.kind == "unsubscribed":
        store.unsubscribe(event.email, source=source, detail=event.detail)
    note_in_ledger(store.engine, event)


def note_in_ledger(engine: Engine, event: Event) -> None:
    """The event on its delivery, matched by our send id or the service's message id."""
    if not (event.send_id or event.provider_id):
        return
    detail = (
        f"{'hard' if event.hard else 'soft'}: {event.detail}"
        if event.kind == "bounced"
        else event.detail
    )
    ledger.record_event(
        engine,
        send_id=event.send_id,
        provider_id=event.provider_id,
        event=event.kind,
        detail=detail,
    )


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


def record(engine: Engine, events: list[Event], store: Store | None = None) -> Outcome:
    """Apply each event once. The claim comes first, so two deliveries of one event racing
    each other apply it once; if applying fails, the claim is released so the service's
    retry can succeed."""
    store = store or Store(engine)
    outcome = Outcome()
    for event in events:
        if not addresses.is_valid(event.email) or not event.event_id:
            continue  # nothing we could suppress or match
        if not _claim(engine, event):
            outcome.replayed += 1
            continue
        try:
            apply_event(store, event)
        except BaseException:
            _release(engine, event)
            raise
        outcome.recorded += 1
    return outcome


def use_token(engine: Engine, service: str, token: str, body: bytes, max_age: int) -> bool:
    """Remember `token` with a digest of `body`. True for a new token, or for one already
    used with this very body (the service retrying); False for another body.

    Tokens are kept for twice the replay window (timestamps are checked both ways),
    then pruned: by then their timestamps are refused anyway."""
    digest = hashlib.sha256(body).hexdigest()
    now = datetime.now(UTC)
    table = webhook_tokens.c
    with engine.begin() as connection:
        connection.execute(
            delete(webhook_tokens).where(
                table.service == service, table.used_at < now - timedelta(seconds=2 * max_age)
            )
        )
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(webhook_tokens).values(
                    service=service, token=token[:255], body_sha256=digest, used_at=now
                )
            )
    except IntegrityError:
        with engine.connect() as connection:
            used_with = connection.execute(
                select(table.body_sha256).where(
                    table.service == service, table.token == token[:255]
                )
            ).scalar()
        return used_with == digest
    return True
