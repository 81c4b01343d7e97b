"""The audience store: who may be mailed, and every unsubscribe, bounce and complaint.

One `Store` wraps a migrated engine (SQLite or PostgreSQL). Reads that feed a send
stream in keyset order, one short query per chunk, so memory stays flat and no
transaction stays open while mail goes out. Subscribing is here too; every other
status change (unsubscribe, bounce, complaint, resubscribe, preferences, erasure)
is in changes.py, one transaction each that also writes an `events` row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    exists,
    func,
    insert,
    select,
)

from campaign.audience import queries, segments
from campaign.audience.addresses import InvalidAddress
from campaign.audience.changes import StatusChanges
from campaign.audience.models import (
    Recipient,
    Subscriber,
    checked_email,
    email_hash,
    one_line,
    overlong,
)
from campaign.audience.segments import Node
from campaign.audience.tables import (
    list_members,
    lists,
    subscribers,
    suppressions,
    topic_choices,
    topics,
    utcnow,
)
from campaign.db import connect
from campaign.errors import UserError

if TYPE_CHECKING:
    from campaign.config import Config

s, m, tc, sup = subscribers, list_members, topic_choices, suppressions
lst, top = lists, topics


class Store(StatusChanges):
    """Subscribers, lists, topics and suppressions in one database. Thread-safe like its engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, config: Config) -> Store:
        """The workspace's store (migrating its database on first use)."""
        return cls(connect(config.database_url))

    # -- recipients: what a send streams ------------------------------------------------------

    def recipients(
        self,
        list_name: str,
        topics: Sequence[str] = (),
        *,
        segment: Node | None = None,
        after_id: int = 0,
        chunk: int = 1000,
    ) -> Iterator[Recipient]:
        """Mailable active members of `list_name` (who chose any of `topics`, if given, and
        meet `segment`, if given), by id.

        Fetches `chunk` rows per query (`WHERE id > last`), so memory stays flat and a send
        can resume with `after_id`. Unknown list or topic: UserError, raised at the call.
        """
        with self.engine.connect() as connection:
            query = self._recipients_query(connection, list_name, topics, segment)
        return self._stream(query, after_id, chunk)

    def recipient_query(
        self, list_name: str, topics: Sequence[str] = (), segment: Node | None = None
    ) -> Select[Any]:
        """`recipients` as one SELECT (columns `id`, `email`, ...), for the ledger to queue a
        send's rows with INSERT ... SELECT instead of through Python."""
        with self.engine.connect() as connection:
            return self._recipients_query(connection, list_name, topics, segment)

    def count_recipients(
        self, list_name: str, topics: Sequence[str] = (), segment: Node | None = None
    ) -> int:
        with self.engine.connect() as connection:
            query = self._recipients_query(connection, list_name, topics, segment)
            return int(
                connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            )

    def _recipients_query(
        self,
        connection: Connection,
        list_name: str,
        topic_names: Sequence[str],
        segment: Node | None = None,
    ) -> Select[Any]:
        """Driven by the list's memberships: their primary key (list_id, subscriber_id) is
        already in keyset order, so each chunk reads only its own rows, whatever the list's size."""
        where = [
            m.c.list_id == queries.list_id(connection, list_name),
            m.c.status == "active",
            s.c.status == "subscribed",
            queries.not_suppressed(),
        ]
        if topic_names:
            where.append(queries.chose_any(queries.topic_ids(connection, topic_names)))
        if segment is not None:
            where.append(segments.to_sql(segment, connection.dialect.name))
        return (
            select(
                s.c.id,
                s.c.public_id,
                s.c.email,
                s.c.name,
                s.c.first_name,
                s.c.last_name,
                s.c.fields,
            )
            .select_from(m.join(s, s.c.id == m.c.subscriber_id))
            .where(*where)
        )

    def _stream(self, query: Select[Any], after_id: int, chunk: int) -> Iterator[Recipient]:
        last = after_id
        while True:
            # The bound on both sides of the join lets PostgreSQL's merge join start at `last`.
            page = query.where(m.c.subscriber_id > last, s.c.id > last)
            with self.engine.connect() as connection:
                rows = connection.execute(page.order_by(m.c.subscriber_id).limit(chunk)).all()
            for row in rows:
                yield Recipient.of(
                    row.id,
                    row.public_id,
                    row.email,
                    row.name,
                    row.first_name,
                    row.last_name,
                    row.fields or {},
                )
            if len(rows) < chunk:
                return
            last = rows[-1].id

    def is_mailable(self, subscriber_id: int, list_name: str | None = None) -> bool:
        """Whether one subscriber may still be mailed (checked again just before sending)."""
        return subscriber_id in self.mailable_ids([subscriber_id], list_name)

    def mailable_ids(self, ids: Sequence[int], list_name: str | None = None) -> set[int]:
        """The ids among `ids` that may still be mailed (of `list_name`, if given; unknown list: none)."""
        found: set[int] = set()
        with self.engine.connect() as connection:
            where = [s.c.status == "subscribed", queries.not_suppressed()]
            if list_name is not None:
                list_id = connection.execute(
                    select(lst.c.id).where(lst.c.name == list_name)
                ).scalar()
                if list_id is None:
                    return found
                where.append(queries.in_list(list_id))
            for part in queries.chunked(list(dict.fromkeys(ids))):
                found.update(
                    connection.execute(select(s.c.id).where(s.c.id.in_(part), *where)).scalars()
                )
        return found

    # -- reading one subscriber ------------------------------------------------------------------

    def get(self, public_id: str) -> Subscriber | None:
        """The subscriber a link points to; None if unknown or erased."""
        return self._one(s.c.public_id == public_id)

    def find(self, email: str) -> Subscriber | None:
        return self._one(s.c.email_hash == email_hash(email))

    def _one(self, where: Any) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(s).where(where, s.c.status != "deleted")).first()
            return queries.load_subscribers(connection, [row])[0] if row else None

    def subscribers(
        self,
        list_name: str | None = None,
        *,
        status: str | None = None,
        after_id: int = 0,
        chunk: int = 500,
    ) -> Iterator[Subscriber]:
        """Every subscriber (of `list_name`: active or not), by id, streamed; erased ones skipped."""
        where = [s.c.status != "deleted"]
        if status is not None:
            where.append(s.c.status == status)
        with self.engine.connect() as connection:
            if list_name is not None:
                list_id = queries.list_id(connection, list_name)
                where.append(exists().where(m.c.subscriber_id == s.c.id, m.c.list_id == list_id))
        return self._stream_subscribers(select(s).where(*where), after_id, chunk)

    def _stream_subscribers(
        self, query: Select[Any], after_id: int, chunk: int
    ) -> Iterator[Subscriber]:
        last = after_id
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    query.where(s.c.id > last).order_by(s.c.id).limit(chunk)
                ).all()
                found = queries.load_subscribers(connection, rows)
            yield from found
            if len(rows) < chunk:
                return
            last = rows[-1].id

    def subscriber_lists(self, public_id: str) -> set[str]:
        """The lists `public_id` is an active member of (empty if unknown)."""
        found = self.get(public_id)
        return set(found.lists) if found else set()

    def subscriber_topics(self, public_id: str) -> set[str]:
        found = self.get(public_id)
        return set(found.topics) if found else set()

    # -- lists and topics ----------------------------------------------------------------------------

    def lists(self) -> list[tuple[str, int]]:
        """Every list with its number of mailable active members, by name."""
        return self._mailable_counts(lst, m, and_(m.c.list_id == lst.c.id, m.c.status == "active"))

    def topics(self) -> list[tuple[str, int]]:
        """Every topic with its number of mailable subscribers who chose it, by name."""
        return self._mailable_counts(top, tc, tc.c.topic_id == top.c.id)

    def _mailable_counts(
        self, groups: Table, links: Table, linked: ColumnElement[bool]
    ) -> list[tuple[str, int]]:
        """Each of `groups` (lists or topics) by name, with how many mailable subscribers
        its `links` rows (joined on `linked`) point to; a group with none counts 0."""
        counted = (
            select(groups.c.name, func.count(s.c.id))
            .select_from(groups)
            .outerjoin(links, linked)
            .outerjoin(
                s,
                and_(
                    s.c.id == links.c.subscriber_id,
                    s.c.status == "subscribed",
                    queries.not_suppressed(),
                ),
            )
            .group_by(groups.c.name)
            .order_by(groups.c.name)
        )
        with self.engine.connect() as connection:
            return [(name, int(count)) for name, count in connection.execute(counted)]

    def ensure_list(self, name: str) -> None:
        """Create the list `name` unless it exists."""
        with self.engine.begin() as connection:
            queries.ensure_names(connection, lst, [name])

    def ensure_topic(self, name: str) -> None:
        """Create the topic `name` unless it exists (the preferences page offers every topic)."""
        with self.engine.begin() as connection:
            queries.ensure_names(connection, top, [name])

    # -- subscribing ----------------------------------------------------------------------------------

    def subscribe(
        self,
        email: str,
        *,
        list_name: str,
        source: str,
        first_name: str = "",
        last_name: str = "",
        name: str = "",
        fields: dict[str, str] | None = None,
        topics: Sequence[str] = (),
    ) -> Subscriber:
        """Add one person who asked to join `list_name` (created if new); keeps an existing record.

        Refused (UserError) for an invalid address, or one that unsubscribed, bounced,
        complained or is suppressed: only `resubscribe` (their own request) brings them back.
        """
        try:
            address = checked_email(email)
        except InvalidAddress as exc:
            raise UserError(f"invalid address {email!r}: {exc}") from None
        names = {"first_name": first_name, "last_name": last_name, "name": name}
        if problem := overlong(names, fields or {}):
            raise UserError(problem)
        hashed = email_hash(address)
        now = utcnow()
        with self.engine.begin() as connection:
            list_id = queries.ensure_names(connection, lst, [list_name])[list_name.strip()]
            topic_ids = queries.ensure_names(connection, top, topics).values() if topics else []
            reason = connection.execute(
                select(sup.c.reason).where(sup.c.email_hash == hashed)
            ).scalar()
            row = connection.execute(
                select(s.c.id, s.c.status).where(s.c.email_hash == hashed)
            ).first()
            if refused := reason or (row.status if row and row.status != "subscribed" else None):
                raise UserError(f"{address} is {refused}: only they can resubscribe themselves")
            if (
                row
                and connection.execute(
                    select(m.c.status).where(m.c.list_id == list_id, m.c.subscriber_id == row.id)
                ).scalar()
                == "unsubscribed"
            ):
                raise UserError(f"{address} left list {list_name!r}: only they can rejoin it")
            if row is None:
                first, last = one_line(first_name), one_line(last_name)
                subscriber_id = connection.execute(
                    insert(s).returning(s.c.id),
                    queries.new_subscriber(
                        address,
                        hashed,
                        one_line(name),
                        first,
                        last,
                        dict(fields or {}),
                        source,
                        now,
                    ),
                ).scalar_one()
                queries.log_event(
                    connection, subscriber_id, hashed, "subscribed", source, list_name
                )
            else:
                subscriber_id = row.id
            queries.join_lists(connection, subscriber_id, [list_id], now)
            queries.choose_topics(connection, subscriber_id, topic_ids, now)
        found = self.find(address)
        assert found is not None
        return found
