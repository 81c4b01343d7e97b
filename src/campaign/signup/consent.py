"""Consent records: for every subscription, when, how, the exact words, from where (hashed).

Written by a signup (`form`), its confirmation (`confirmation`) and a CSV import
(`import`, the file's name as its words); read by `subscribers show` and
`subscribers export --consents`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, delete, insert, literal, select

from campaign.audience.models import email_hash
from campaign.audience.tables import list_members, lists, subscribers
from campaign.signup.tables import consents, signups

HEADER = ["email", "list", "method", "when", "consent_text", "ip_hash"]


@dataclass(frozen=True)
class Consent:
    list_name: str
    method: str
    text: str
    ip_hash: str | None
    at: datetime


def record_consent(
    connection: Connection,
    subscriber_id: int,
    list_name: str,
    method: str,
    text: str,
    ip_hash: str | None,
    when: datetime,
) -> None:
    connection.execute(
        insert(consents).values(
            subscriber_id=subscriber_id,
            list_name=list_name,
            method=method,
            consent_text=text,
            ip_hash=ip_hash,
            created_at=when,
        )
    )


def record_imported(
    connection: Connection, hashes: Sequence[str], list_name: str, text: str, when: Any
) -> None:
    """One `import` consent per subscriber among `hashes`, in one INSERT ... SELECT."""
    connection.execute(
        insert(consents).from_select(
            ["subscriber_id", "list_name", "method", "consent_text", "created_at"],
            select(
                subscribers.c.id, literal(list_name), literal("import"), literal(text), when
            ).where(subscribers.c.email_hash.in_(hashes)),
        )
    )


def erase(connection: Connection, subscriber_id: int | None, hashed: str) -> None:
    """Part of erasing a person: their consent records and unconfirmed signups go too."""
    connection.execute(delete(signups).where(signups.c.email_hash == hashed))
    if subscriber_id is not None:
        connection.execute(delete(consents).where(consents.c.subscriber_id == subscriber_id))


def consent_records(engine: Engine, email: str) -> list[Consent]:
    """Every consent the subscriber of `email` gave, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(consents)
            .join(subscribers, subscribers.c.id == consents.c.subscriber_id)
            .where(subscribers.c.email_hash == email_hash(email))
            .order_by(consents.c.id)
        ).all()
    return [Consent(r.list_name, r.method, r.consent_text, r.ip_hash, r.created_at) for r in rows]


def export_consents(engine: Engine, out: TextIO, list_name: str | None = None) -> int:
    """Write every consent record (of `list_name`'s current members, if given) as CSV."""
    query = (
        select(
            subscribers.c.email,
            consents.c.list_name,
            consents.c.method,
            consents.c.created_at,
            consents.c.consent_text,
            consents.c.ip_hash,
        )
        .join(subscribers, subscribers.c.id == consents.c.subscriber_id)
        .order_by(consents.c.id)
    )
    if list_name is not None:
        query = query.where(
            consents.c.list_name == list_name,
            select(list_members.c.subscriber_id)
            .join(lists, lists.c.id == list_members.c.list_id)
            .where(lists.c.name == list_name, list_members.c.subscriber_id == subscribers.c.id)
            .exists(),
        )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    written = 0
    with engine.connect() as connection:
        for row in connection.execute(query):
            writer.writerow(
                [
                    row.email,
                    row.list_name,
                    row.method,
                    row.created_at.isoformat(),
                    row.consent_text,
                    row.ip_hash or "",
                ]
            )
            written += 1
    return written
