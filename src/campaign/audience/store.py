"""The audience store: who may be mailed, and every unsubscribe, bounce and complaint.

One `Store` wraps a migrated engine (SQLite or PostgreSQL). Reads that feed a send
stream in keyset order, one short query per chunk, so memory stays flat and no
transaction stays open while mail goes out. Every status change is one
transaction that also writes an `events` row saying what, when and from where.
Status changes are written as conditional UPDATEs, so two processes (the cron
sender and the web host) recording the same unsubscribe agree on one outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from email_validator import EmailNotValidError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from campaign.audience import queries, segments, suppression
from campaign.audience.addresses import normalise
from campaign.audience.models import (
    Recipient,
    Subscriber,
    checked_email,
    email_hash,
    normalise_email,
    one_line,
    overlong,
)
from campaign.audience.segments import Node
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
from campaign.db import connect
from campaign.errors import UserError
from campaign.signup import consent as signup_consent

if TYPE_CHECKING:
    from campaign.config import Config

s, m, tc, sup = subscribers, list_members, topic_choices, suppressions
lst, top = lists, topics


class Store:
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
        except EmailNotValidError as exc:
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

    # -- status changes -------------------------------------------------------------------------------

    def unsubscribe(
        self,
        public_id_or_email: str,
        *,
        source: str,
        list_name: str | None = None,
        detail: str = "",
    ) -> None:
        """Stop mail to someone: from one list, or (list_name None) from everything, for good.

        Idempotent. An address that is not a subscriber is suppressed all the same;
        an unknown public id is a UserError.
        """
        key = public_id_or_email.strip()
        by_email = "@" in key
        hashed = email_hash(key) if by_email else None
        with self.engine.begin() as connection:
            row = connection.execute(
                select(s.c.id, s.c.email, s.c.email_hash, s.c.status).where(
                    s.c.email_hash == hashed if by_email else s.c.public_id == key
                )
            ).first()
            if row is None and not by_email:
                raise UserError(f"no subscriber with id {key!r}")
            if list_name is not None:
                list_id = queries.list_id(connection, list_name)
                if (
                    row is not None
                    and connection.execute(
                        update(m)
                        .where(
                            m.c.list_id == list_id,
                            m.c.subscriber_id == row.id,
                            m.c.status == "active",
                        )
                        .values(status="unsubscribed")
                    ).rowcount
                ):
                    queries.log_event(
                        connection,
                        row.id,
                        row.email_hash,
                        "list_unsubscribed",
                        source,
                        list_name,
                        detail,
                    )
                return
            if row is not None and row.status == "deleted":
                return
            changed = False
            if row is not None:
                changed = bool(
                    connection.execute(
                        update(s)
                        .where(s.c.id == row.id, s.c.status == "subscribed")
                        .values(status="unsubscribed", updated_at=utcnow())
                    ).rowcount
                )
            address = row.email if row is not None else normalise_email(key)
            changed = suppression.suppress(connection, address, "unsubscribed", source) or changed
            if changed:
                queries.log_event(
                    connection,
                    row.id if row else None,
                    email_hash(address),
                    "unsubscribed",
                    source,
                    detail,
                )

    def record_bounce(self, email: str, *, hard: bool, source: str, detail: str = "") -> None:
        """A bounce reported by a mail service: hard suppresses now; the third soft one does too."""
        hashed = email_hash(email)
        with self.engine.begin() as connection:
            row = connection.execute(select(s.c.id).where(s.c.email_hash == hashed)).first()
            subscriber_id = row.id if row else None
            bounces = 0
            if subscriber_id is not None:
                bounces = connection.execute(
                    update(s)
                    .where(s.c.id == subscriber_id)
                    .values(soft_bounces=s.c.soft_bounces + (0 if hard else 1), updated_at=utcnow())
                    .returning(s.c.soft_bounces)
                ).scalar_one()
            kind = "bounce_hard" if hard else "bounce_soft"
            queries.log_event(connection, subscriber_id, hashed, kind, source, detail)
            if hard or bounces >= suppression.SOFT_BOUNCE_LIMIT:
                suppression.block(
                    connection, subscriber_id, normalise_email(email), "bounced", source
                )

    def record_complaint(self, email: str, *, source: str, detail: str = "") -> None:
        """A spam complaint: never mail this address again."""
        hashed = email_hash(email)
        with self.engine.begin() as connection:
            subscriber_id = connection.execute(
                select(s.c.id).where(s.c.email_hash == hashed)
            ).scalar()
            queries.log_event(connection, subscriber_id, hashed, "complaint", source, detail)
            suppression.block(
                connection, subscriber_id, normalise_email(email), "complained", source
            )

    @staticmethod
    def _existing(connection: Connection, public_id: str) -> Row[Any]:
        """The subscriber row of `public_id`; a UserError if there is none (or it was deleted)."""
        row = connection.execute(
            select(s).where(s.c.public_id == public_id, s.c.status != "deleted")
        ).first()
        if row is None:
            raise UserError(f"no subscriber with id {public_id!r}")
        return row

    def resubscribe(self, public_id: str, *, source: str, list_name: str | None = None) -> None:
        """Bring back someone who unsubscribed themselves (to `list_name` too, if given); logged.

        Refused (UserError) for a bounced or complaining address: only an unsubscribe can be undone.
        """
        now = utcnow()
        with self.engine.begin() as connection:
            row = self._existing(connection, public_id)
            reason = connection.execute(
                select(sup.c.reason).where(sup.c.email_hash == row.email_hash)
            ).scalar()
            if row.status in ("bounced", "complained") or reason not in (None, "unsubscribed"):
                raise UserError(
                    f"{row.email} {reason or row.status}: only an unsubscribe can be undone"
                )
            changed = False
            if list_name is not None:
                list_id = queries.list_id(connection, list_name)
                changed = bool(
                    connection.execute(
                        update(m)
                        .where(
                            m.c.list_id == list_id,
                            m.c.subscriber_id == row.id,
                            m.c.status != "active",
                        )
                        .values(status="active", added_at=now)
                    ).rowcount
                )
                queries.join_lists(connection, row.id, [list_id], now)
            if row.status != "subscribed" or reason is not None:
                changed = True
                suppression.lift(connection, [row.email_hash], source=source, now=now)
            if changed:
                queries.log_event(
                    connection, row.id, row.email_hash, "resubscribed", source, list_name or ""
                )

    def set_preferences(
        self,
        public_id: str,
        *,
        lists: set[str],
        topics: set[str],
        name: str | None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> None:
        """What the preferences page saves: exactly these lists and topics, and maybe a new name
        (each of name, first_name, last_name that is not None; the page clears `name` so the
        display name follows the first and last name, as the greeting does).

        Lists not named are left (membership unsubscribed); named ones are joined. It never
        changes the overall status: someone unsubscribed from everything needs `resubscribe`.
        """
        now = utcnow()
        with self.engine.begin() as connection:
            row = self._existing(connection, public_id)
            list_ids = {name_: queries.list_id(connection, name_) for name_ in sorted(lists)}
            topic_ids = set(queries.topic_ids(connection, topics)) if topics else set()
            current = dict(
                connection.execute(
                    select(m.c.list_id, m.c.status).where(m.c.subscriber_id == row.id)
                ).all()
            )
            wanted = set(list_ids.values())
            joined = [i for i in wanted if current.get(i) != "active"]
            left = [i for i, status in current.items() if status == "active" and i not in wanted]
            chosen = set(
                connection.execute(
                    select(tc.c.topic_id).where(tc.c.subscriber_id == row.id)
                ).scalars()
            )
            changes = []
            if joined:
                connection.execute(
                    update(m)
                    .where(m.c.subscriber_id == row.id, m.c.list_id.in_(joined))
                    .values(status="active", added_at=now)
                )
                queries.join_lists(connection, row.id, joined, now)
            if left:
                connection.execute(
                    update(m)
                    .where(m.c.subscriber_id == row.id, m.c.list_id.in_(left))
                    .values(status="unsubscribed")
                )
            if joined or left:
                changes.append("lists: " + ", ".join(sorted(lists)))
            if chosen != topic_ids:
                connection.execute(
                    delete(tc).where(tc.c.subscriber_id == row.id, tc.c.topic_id.not_in(topic_ids))
                )
                queries.choose_topics(connection, row.id, topic_ids - chosen, now)
                changes.append("topics: " + ", ".join(sorted(topics)))
            names = {
                column: one_line(value)
                for column, value in (
                    ("name", name),
                    ("first_name", first_name),
                    ("last_name", last_name),
                )
                if value is not None and one_line(value) != row._mapping[column]
            }
            if names:
                connection.execute(update(s).where(s.c.id == row.id).values(**names))
                changes.append("name")
            if changes:
                connection.execute(update(s).where(s.c.id == row.id).values(updated_at=now))
                queries.log_event(
                    connection,
                    row.id,
                    row.email_hash,
                    "preferences",
                    "preferences page",
                    "; ".join(changes),
                )

    def delete(self, email: str, *, source: str = "delete", secret: str = "") -> bool:
        """Erase a person's data everywhere: the send ledger (which keeps its counts and a
        hash keyed with `secret`), consent records and unconfirmed signups included; keep the
        hash of the address as a suppression, so it stays blocked. Returns whether a subscriber's data was erased (else only the block is new)."""
        from campaign.send import ledger  # not at the top: campaign.send imports this module

        hashed = email_hash(email)
        with self.engine.begin() as connection:
            subscriber_id = connection.execute(
                select(s.c.id).where(s.c.email_hash == hashed)
            ).scalar()
            ledger.erase(connection, subscriber_id, normalise(email), secret)
            signup_consent.erase(connection, subscriber_id, hashed)
            return suppression.erase(connection, hashed, source)

    def history(self, email: str) -> list[dict[str, Any]]:
        """The events log of one address (by its hash, so an erased address still shows its history)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(events.c.kind, events.c.detail, events.c.source, events.c.created_at)
                .where(events.c.email_hash == email_hash(email))
                .order_by(events.c.id)
            )
            return [dict(row._mapping) for row in rows]
