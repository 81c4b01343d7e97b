"""Query pieces the store and the importer share: lookups by name, conflict-free inserts,
the "may be mailed" conditions, and turning subscriber rows into `Subscriber`s.

Everything here takes an open connection, so the caller decides the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, exists, insert, select

from campaign.audience.models import Subscriber, display_name
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
from campaign.db import insert_ignoring
from campaign.errors import UserError

IN_CHUNK = 500
"""Ids or addresses per `IN (...)` query."""


def chunked(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def new_public_id() -> str:
    """The random id that links carry; never the sequential row id."""
    return secrets.token_urlsafe(16)


def new_subscriber(
    email: str,
    hashed: str,
    name: str,
    first_name: str,
    last_name: str,
    fields: Mapping[str, Any],
    source: str,
    now: datetime,
) -> dict[str, Any]:
    """The row of someone subscribed for the first time (by `subscribe` or an import)."""
    return {
        "public_id": new_public_id(),
        "email": email,
        "email_hash": hashed,
        "name": display_name(name, first_name, last_name),
        "first_name": first_name,
        "last_name": last_name,
        "fields": fields,
        "status": "subscribed",
        "consent_source": source,
        "consent_at": now,
        "soft_bounces": 0,
        "created_at": now,
        "updated_at": now,
    }


def not_suppressed() -> Any:
    return ~exists().where(suppressions.c.email_hash == subscribers.c.email_hash)


def in_list(list_id: int) -> Any:
    return exists().where(
        list_members.c.subscriber_id == subscribers.c.id,
        list_members.c.list_id == list_id,
        list_members.c.status == "active",
    )


def chose_any(topic_ids: Sequence[int]) -> Any:
    return exists().where(
        topic_choices.c.subscriber_id == subscribers.c.id, topic_choices.c.topic_id.in_(topic_ids)
    )


def insert_ignore(
    connection: Connection, table: Any, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both backends (another process may have won the race)."""
    if not rows:
        return
    connection.execute(insert_ignoring(connection, table, keys), rows)


def join_lists(
    connection: Connection, subscriber_id: int, list_ids: Iterable[int], now: datetime
) -> None:
    """Active memberships of `list_ids` for one subscriber, where there is no membership yet."""
    insert_ignore(
        connection,
        list_members,
        [
            {"list_id": i, "subscriber_id": subscriber_id, "status": "active", "added_at": now}
            for i in list_ids
        ],
        ["list_id", "subscriber_id"],
    )


def choose_topics(
    connection: Connection, subscriber_id: int, topic_ids: Iterable[int], now: datetime
) -> None:
    """Topic choices of `topic_ids` for one subscriber (those already chosen stay as they are)."""
    insert_ignore(
        connection,
        topic_choices,
        [{"subscriber_id": subscriber_id, "topic_id": t, "chosen_at": now} for t in topic_ids],
        ["subscriber_id", "topic_id"],
    )


def _names(connection: Connection, table: Table) -> str:
    """The names in `table` (lists or topics), for an error that says what exists."""
    return (
        ", ".join(connection.execute(select(table.c.name).order_by(table.c.name)).scalars())
        or "none yet"
    )


def ensure_names(connection: Connection, table: Table, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named lists or topics (`table`), creating those missing."""
    wanted = list(dict.fromkeys(name.strip() for name in names))
    for name in wanted:
        if not name:
            raise UserError(f"a {table.name[:-1]} name cannot be empty")
    insert_ignore(
        connection, table, [{"name": name, "created_at": utcnow()} for name in wanted], ["name"]
    )
    return dict(
        connection.execute(select(table.c.name, table.c.id).where(table.c.name.in_(wanted))).all()
    )


def list_id(connection: Connection, name: str) -> int:
    """The id of list `name`; a UserError naming the lists there are if it does not exist."""
    found = connection.execute(select(lists.c.id).where(lists.c.name == name)).scalar()
    if found is None:
        raise UserError(f"unknown list {name!r} (lists: {_names(connection, lists)})")
    return int(found)


def topic_ids(connection: Connection, names: Iterable[str]) -> list[int]:
    """The ids of the named topics; a UserError naming the unknown ones."""
    wanted = set(names)
    found = dict(
        connection.execute(
            select(topics.c.name, topics.c.id).where(topics.c.name.in_(wanted))
        ).all()
    )
    if missing := sorted(wanted - found.keys()):
        raise UserError(
            f"unknown topic {', '.join(map(repr, missing))} (topics: {_names(connection, topics)})"
        )
    return list(found.values())


def log_event(
    connection: Connection,
    subscriber_id: int | None,
    hashed: str | None,
    kind: str,
    source: str,
    *details: str,
) -> None:
    """One `events` row: what happened to whom, from where (details joined by ": ")."""
    connection.execute(
        insert(events),
        {
            "subscriber_id": subscriber_id,
            "email_hash": hashed,
            "kind": kind,
            "detail": ": ".join(d for d in details if d),
            "source": source,
            "created_at": utcnow(),
        },
    )


def load_subscribers(connection: Connection, rows: Sequence[Row[Any]]) -> list[Subscriber]:
    """Subscribers for `rows` of the subscribers table, with lists, topics and suppression."""
    m, tc = list_members, topic_choices
    ids = [row.id for row in rows]
    active: dict[int, set[str]] = {i: set() for i in ids}
    left: dict[int, set[str]] = {i: set() for i in ids}
    chosen: dict[int, set[str]] = {i: set() for i in ids}
    blocked: dict[str, str] = {}
    for part in chunked(ids):
        for sid, name, status in connection.execute(
            select(m.c.subscriber_id, lists.c.name, m.c.status)
            .join(lists, lists.c.id == m.c.list_id)
            .where(m.c.subscriber_id.in_(part))
        ):
            (active if status == "active" else left)[sid].add(name)
        for sid, name in connection.execute(
            select(tc.c.subscriber_id, topics.c.name)
            .join(topics, topics.c.id == tc.c.topic_id)
            .where(tc.c.subscriber_id.in_(part))
        ):
            chosen[sid].add(name)
    hashes = [row.email_hash for row in rows if row.email_hash]
    for part in chunked(hashes):
        blocked.update(
            connection.execute(
                select(suppressions.c.email_hash, suppressions.c.reason).where(
                    suppressions.c.email_hash.in_(part)
                )
            ).all()
        )
    return [
        Subscriber(
            id=row.id,
            public_id=row.public_id,
            email=row.email or "",
            name=row.name,
            first_name=row.first_name,
            last_name=row.last_name,
            fields=dict(row.fields or {}),
            status=row.status,
            consent_source=row.consent_source,
            consent_at=row.consent_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            soft_bounces=row.soft_bounces,
            lists=frozenset(active[row.id]),
            unsubscribed_lists=frozenset(left[row.id]),
            topics=frozenset(chosen[row.id]),
            suppressed=blocked.get(row.email_hash or ""),
        )
        for row in rows
    ]
