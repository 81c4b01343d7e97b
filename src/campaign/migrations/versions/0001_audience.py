"""Audience: subscribers, lists, topics, suppressions, events.

Revision ID: 0001_audience
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_audience"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "('subscribed', 'unsubscribed', 'bounced', 'complained', 'deleted')"


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("email_hash", sa.String(64)),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("consent_source", sa.Text),
        _when("consent_at", nullable=True),
        sa.Column("soft_bounces", sa.Integer, nullable=False, server_default="0"),
        _when("created_at"),
        _when("updated_at"),
        sa.UniqueConstraint("public_id", name="uq_subscribers_public_id"),
        sa.UniqueConstraint("email", name="uq_subscribers_email"),
        sa.UniqueConstraint("email_hash", name="uq_subscribers_email_hash"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_subscribers_status"),
    )
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("name", name="uq_lists_name"),
    )
    op.create_table(
        "list_members",
        sa.Column(
            "list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        _when("added_at"),
        sa.CheckConstraint("status IN ('active', 'unsubscribed')", name="ck_list_members_status"),
    )
    op.create_index("ix_list_members_subscriber_id", "list_members", ["subscriber_id"])
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("name", name="uq_topics_name"),
    )
    op.create_table(
        "topic_choices",
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "topic_id", sa.Integer, sa.ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
        ),
        _when("chosen_at"),
    )
    op.create_index("ix_topic_choices_topic_id", "topic_choices", ["topic_id"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("email_hash", name="uq_suppressions_email_hash"),
        sa.CheckConstraint(
            "reason IN ('unsubscribed', 'bounced', 'complained', 'deleted')",
            name="ck_suppressions_reason",
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("email_hash", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _when("created_at"),
    )
    op.create_index("ix_events_subscriber_id", "events", ["subscriber_id"])
    op.create_index("ix_events_email_hash", "events", ["email_hash"])


def downgrade() -> None:
    for table in (
        "events",
        "suppressions",
        "topic_choices",
        "topics",
        "list_members",
        "lists",
        "subscribers",
    ):
        op.drop_table(table)
