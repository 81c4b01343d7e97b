"""Status changes of the audience: unsubscribes, bounces, complaints, resubscribes,
preferences and erasure, with the events log they write.

Every change is one transaction that also writes an `events` row saying what, when
and from where, and is written as conditional UPDATEs, so two processes (the cron
sender and the web host) recording the same unsubscribe agree on one outcome.
`Store` (store.py) has these methods; they are apart from its reads and subscribing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select, update

from campaign.audience import queries, suppression
from campaign.audience.addresses import normalise
from campaign.audience.models import email_hash, normalise_email, one_line
from campaign.audience.tables import (
    events,
    list_members,
    subscribers,
    suppressions,
    topic_choices,
    utcnow,
)
from campaign.errors import UserError
from campaign.signup import consent as signup_consent

s, m, tc, sup = subscribers, list_members, topic_choices, suppressions


class StatusChanges:
    """The status-changing half of `Store`, over the same engine."""

    engine: Engine

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
