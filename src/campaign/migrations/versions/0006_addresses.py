"""Addresses stored with a punycode domain take the one stored form (the domain in Unicode).

Subscribers were always stored in that form, but an unsubscribe, bounce or complaint
given in punycode suppressed (and logged) the punycode spelling's hash, which no
longer matches anything. Each such suppression is re-keyed to the stored form; where
that form is already suppressed, the stronger reason stays.

Revision ID: 0006_addresses
Revises: 0004_schedule
"""

import sqlalchemy as sa
from alembic import op

from campaign.audience.models import email_hash, normalise_email
from campaign.audience.suppression import STRENGTH

revision = "0006_addresses"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None

suppressions = sa.table(
    "suppressions",
    sa.column("id", sa.Integer),
    sa.column("email_hash", sa.String),
    sa.column("email", sa.String),
    sa.column("reason", sa.String),
)
subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("email_hash", sa.String),
)
events = sa.table("events", sa.column("email_hash", sa.String))


def upgrade() -> None:
    connection = op.get_bind()
    for table in (subscribers, suppressions):
        rows = connection.execute(
            sa.select(table.c.id, table.c.email, table.c.email_hash).where(
                table.c.email.like("%xn--%")
            )
        ).all()
        for row in rows:
            stored, hashed = normalise_email(row.email), email_hash(row.email)
            if hashed == row.email_hash and stored == row.email:
                continue
            taken = connection.execute(
                sa.select(table.c.id).where(table.c.email_hash == hashed, table.c.id != row.id)
            ).first()
            if taken is not None and table is suppressions:
                _merge_suppressions(connection, row.id, taken.id)
            elif taken is not None:
                continue  # two subscribers for one address: left for a person to resolve
            else:
                connection.execute(
                    sa.update(table)
                    .where(table.c.id == row.id)
                    .values(email=stored, email_hash=hashed)
                )
            connection.execute(
                sa.update(events)
                .where(events.c.email_hash == row.email_hash)
                .values(email_hash=hashed)
            )


def _merge_suppressions(connection: sa.Connection, old: int, kept: int) -> None:
    """Keep the stronger reason of two suppressions of one address, in the row already keyed right."""
    reasons = dict(
        connection.execute(
            sa.select(suppressions.c.id, suppressions.c.reason).where(
                suppressions.c.id.in_([old, kept])
            )
        ).all()
    )
    if STRENGTH[reasons[old]] > STRENGTH[reasons[kept]]:
        connection.execute(
            sa.update(suppressions).where(suppressions.c.id == kept).values(reason=reasons[old])
        )
    connection.execute(sa.delete(suppressions).where(suppressions.c.id == old))


def downgrade() -> None:
    """Nothing to undo: the stored form is also valid for the code before this revision."""
