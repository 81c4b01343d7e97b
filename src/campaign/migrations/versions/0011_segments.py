"""Segments and signups: the condition a send (and a schedule) chose its recipients by;
pending signups, consent records and signup rate limits.

Revision ID: 0011_segments
Revises: 0008_webhook_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_segments"
down_revision = "0008_webhook_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("sends", "schedules"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("segment", sa.Text))
    op.create_table(
        "signups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("consent_text", sa.Text, nullable=False),
        sa.Column("ip_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mailed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("list_name", "email_hash", name="uq_signups_list_email"),
    )
    op.create_index("ix_signups_created_at", "signups", ["created_at"])
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE")),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("consent_text", sa.Text, nullable=False),
        sa.Column("ip_hash", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consents_subscriber_id", "consents", ["subscriber_id"])
    op.create_table(
        "signup_limits",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_signup_limits_window_start", "signup_limits", ["window_start"])


def downgrade() -> None:
    for name in ("signup_limits", "consents", "signups"):
        op.drop_table(name)
    for table in ("sends", "schedules"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("segment")
