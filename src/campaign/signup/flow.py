"""What a signup and its confirmation do to the database; the web pages only call these.

A double opt-in signup is a row in `signups` until its link is confirmed: the
person is not a subscriber yet, so no campaign can reach them. Confirming makes
(or brings back) the subscriber, the membership and topics, and the consent
records, in one transaction, and deletes the pending row, so a second press of
the button does nothing. Someone who unsubscribed, bounced or complained comes
back only this way, and the event log says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, insert, literal, select, update

from campaign.audience.models import email_hash, one_line
from campaign.audience.queries import insert_ignore, new_subscriber
from campaign.audience.tables import (
    events,
    list_members,
    lists,
    subscribers,
    suppressions,
    topic_choices,
    topics,
    utcnow,
)
from campaign.db import dialect_insert
from campaign.signup.consent import record_consent
from campaign.signup.tables import signup_limits, signups

RESEND_AFTER = timedelta(hours=1)
"""Signing up again sends the confirmation again at most this often."""

s, m = subscribers, list_members


@dataclass(frozen=True)
class Signup:
    """One filled-in form, checked: a valid address, the list's own topics and fields."""

    list_name: str
    email: str
    consent_text: str
    ip_hash: str
    name: str = ""
    topics: Sequence[str] = ()
    fields: dict[str, str] = field(default_factory=dict)


def pending(engine: Engine, signup: Signup, now: datetime | None = None) -> str | None:
    """Record (or refresh) an unconfirmed signup; the token to mail, or None when its
    confirmation went out less than an hour ago. Safe under concurrency: the one
    conditional UPDATE decides who mails."""
    now = now or utcnow()
    hashed = email_hash(signup.email)
    values = {
        "name": one_line(signup.name),
        "fields": dict(signup.fields),
        "topics": sorted(signup.topics),
        "consent_text": signup.consent_text,
        "ip_hash": signup.ip_hash,
        "email": signup.email,
        "created_at": now,  # signing up again restarts the link's week
    }
    with engine.begin() as connection:
        _ensure(connection, lists, signup.list_name)  # a send to it finds it, with no one yet
        connection.execute(
            dialect_insert(connection, signups)
            .values(
                token=secrets.token_urlsafe(16),
                list_name=signup.list_name,
                email_hash=hashed,
                **values,
            )
            .on_conflict_do_update(index_elements=["list_name", "email_hash"], set_=values)
        )
        token: str | None = connection.execute(
            update(signups)
            .where(
                signups.c.list_name == signup.list_name,
                signups.c.email_hash == hashed,
                (signups.c.mailed_at.is_(None)) | (signups.c.mailed_at < now - RESEND_AFTER),
            )
            .values(mailed_at=now)
            .returning(signups.c.token)
        ).scalar()
    return token


def not_mailed(engine: Engine, token: str) -> None:
    """The confirmation could not be sent: let the next signup try again at once."""
    with engine.begin() as connection:
        connection.execute(update(signups).where(signups.c.token == token).values(mailed_at=None))


@dataclass(frozen=True)
class Pending:
    email: str
    list_name: str


def find_pending(engine: Engine, token: str) -> Pending | None:
    """The unconfirmed signup a link names (for the page that asks to confirm)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(signups.c.email, signups.c.list_name).where(signups.c.token == token)
        ).first()
    return Pending(row.email, row.list_name) if row else None


def confirm(
    engine: Engine, token: str, ip_hash: str, *, max_age: timedelta, now: datetime | None = None
) -> Pending | None:
    """Make the signup of `token` a subscription; None if there is none (used, purged, too old)."""
    now = now or utcnow()
    with engine.begin() as connection:
        row = connection.execute(
            delete(signups).where(signups.c.token == token).returning(*signups.c)
        ).first()
        if row is None or row.created_at < now - max_age:
            return None
        subscriber_id = _subscriber(connection, row, now)
        _join(connection, subscriber_id, row.list_name, row.topics or [], now)
        record_consent(
            connection,
            subscriber_id,
            row.list_name,
            "form",
            row.consent_text,
            row.ip_hash,
            row.created_at,
        )
        record_consent(
            connection,
            subscriber_id,
            row.list_name,
            "confirmation",
            row.consent_text,
            ip_hash,
            now,
        )
    return Pending(row.email, row.list_name)


def subscribe_now(engine: Engine, signup: Signup, now: datetime | None = None) -> bool:
    """Single opt-in: subscribe at once, unless the address left, bounced or complained
    (False: it must confirm by email, like a double opt-in signup)."""
    now = now or utcnow()
    hashed = email_hash(signup.email)
    with engine.begin() as connection:
        if connection.execute(
            select(suppressions.c.id).where(suppressions.c.email_hash == hashed)
        ).first():
            return False
        existing = connection.execute(
            select(s.c.id, s.c.status).where(s.c.email_hash == hashed)
        ).first()
        if existing is not None and existing.status != "subscribed":
            return False
        row = _Row(signup.email, hashed, one_line(signup.name), dict(signup.fields))
        subscriber_id = _subscriber(connection, row, now)
        if not _join(connection, subscriber_id, signup.list_name, signup.topics, now, rejoin=False):
            return False
        record_consent(
            connection,
            subscriber_id,
            signup.list_name,
            "form",
            signup.consent_text,
            signup.ip_hash,
            now,
        )
    return True


@dataclass(frozen=True)
class _Row:
    email: str
    email_hash: str
    name: str
    fields: dict[str, str]


def _subscriber(connection: Connection, row: Any, now: datetime) -> int:
    """The subscriber of a confirmed signup: new, or the existing one brought back (its
    suppression lifted: this is the person's own confirmed request), fields merged.

    A new address is inserted ON CONFLICT DO NOTHING: the same address confirmed on another
    list at the same instant may have inserted it since we looked (PostgreSQL otherwise
    fails the second with a unique violation); then it is the existing one. No conflict
    target: with one (email_hash), PostgreSQL still raises on the other unique index (email)
    when the racing row lands there first."""
    source = "signup confirmed"
    query = select(s.c.id, s.c.status, s.c.name, s.c.fields).where(s.c.email_hash == row.email_hash)
    found = connection.execute(query).first()
    if found is None:
        subscriber_id: int | None = connection.execute(
            dialect_insert(connection, s).on_conflict_do_nothing().returning(s.c.id),
            new_subscriber(
                row.email, row.email_hash, row.name, "", "", dict(row.fields), source, now
            ),
        ).scalar()
        if subscriber_id is not None:
            _event(connection, subscriber_id, row.email_hash, "subscribed", source, now)
            lifted = connection.execute(
                delete(suppressions).where(suppressions.c.email_hash == row.email_hash)
            ).rowcount
            if lifted:
                _event(connection, subscriber_id, row.email_hash, "resubscribed", source, now)
            return subscriber_id
        found = connection.execute(query).one()  # the other confirmation's, committed
    lifted = connection.execute(
        delete(suppressions).where(suppressions.c.email_hash == row.email_hash)
    ).rowcount
    values: dict[str, Any] = {"fields": {**(found.fields or {}), **row.fields}, "updated_at": now}
    if row.name and not found.name:
        values["name"] = row.name
    if found.status != "subscribed" or lifted:
        values |= {
            "status": "subscribed",
            "consent_source": source,
            "consent_at": now,
            "soft_bounces": 0,
        }
        _event(connection, found.id, row.email_hash, "resubscribed", source, now)
    connection.execute(update(s).where(s.c.id == found.id).values(**values))
    return int(found.id)


def _join(
    connection: Connection,
    subscriber_id: int,
    list_name: str,
    topic_names: Sequence[str],
    now: datetime,
    *,
    rejoin: bool = True,
) -> bool:
    """Make `subscriber_id` an active member of `list_name` with `topic_names`; a member who
    left the list rejoins only if `rejoin` (a confirmed request). Whether they are a member now."""
    list_id = _ensure(connection, lists, list_name)
    status = connection.execute(
        select(m.c.status).where(m.c.list_id == list_id, m.c.subscriber_id == subscriber_id)
    ).scalar()
    if status == "unsubscribed" and not rejoin:
        return False
    if status is None:
        insert_ignore(
            connection,
            m,
            [
                {
                    "list_id": list_id,
                    "subscriber_id": subscriber_id,
                    "status": "active",
                    "added_at": now,
                }
            ],
            ["list_id", "subscriber_id"],
        )
    elif status != "active":
        connection.execute(
            update(m)
            .where(m.c.list_id == list_id, m.c.subscriber_id == subscriber_id)
            .values(status="active", added_at=now)
        )
    insert_ignore(
        connection,
        topic_choices,
        [
            {
                "subscriber_id": subscriber_id,
                "topic_id": _ensure(connection, topics, name),
                "chosen_at": now,
            }
            for name in topic_names
        ],
        ["subscriber_id", "topic_id"],
    )
    return True


def _ensure(connection: Connection, table: Any, name: str) -> int:
    insert_ignore(connection, table, [{"name": name, "created_at": utcnow()}], ["name"])
    return int(connection.execute(select(table.c.id).where(table.c.name == name)).scalar_one())


def _event(
    connection: Connection, subscriber_id: int, hashed: str, kind: str, source: str, now: datetime
) -> None:
    connection.execute(
        insert(events).values(
            subscriber_id=subscriber_id,
            email_hash=hashed,
            kind=kind,
            detail="",
            source=source,
            created_at=now,
        )
    )


def within_limit(engine: Engine, key: str, limit: int, now: datetime | None = None) -> bool:
    """Count one signup against `key` (ip:<hash> or address:<hash>) in its hour; whether it is
    within `limit`. One upsert that returns the new count: concurrent requests cannot both
    read the same count, on SQLite (one writer) or PostgreSQL (the row's lock)."""
    now = now or utcnow()
    row = signup_limits.c
    fresh = row.window_start < now - timedelta(hours=1)
    with engine.begin() as connection:
        statement = (
            dialect_insert(connection, signup_limits)
            .values(key=key, window_start=now, count=1)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "count": _case(fresh, 1, row.count + 1),
                    "window_start": _case(fresh, now, row.window_start),
                },
            )
            .returning(row.count)
        )
        count = int(connection.execute(statement).scalar_one())
    return count <= limit


def _case(condition: Any, then: Any, otherwise: Any) -> Any:
    if isinstance(then, datetime):
        then = literal(then, signup_limits.c.window_start.type)
    return case((condition, then), else_=otherwise)


def purge(engine: Engine, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete unconfirmed signups older than `older_than`, and spent rate-limit windows;
    how many signups went."""
    now = now or utcnow()
    with engine.begin() as connection:
        connection.execute(
            delete(signup_limits).where(signup_limits.c.window_start < now - timedelta(hours=1))
        )
        return int(
            connection.execute(
                delete(signups).where(signups.c.created_at < now - older_than)
            ).rowcount
        )
