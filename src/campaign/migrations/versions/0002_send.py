"""Send ledger: one send per campaign, one delivery row per (send, recipient).

Revision ID: 0002_send
Revises: 0001_audience
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_send"
down_revision = "0001_audience"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("compiled", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("enqueued_through", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enqueued", sa.Boolean, nullable=False, server_default=sa.false()),
        _when("created_at", nullable=False),
        _when("started_at"),
        _when("finished_at"),
        sa.UniqueConstraint("campaign", name="uq_sends_campaign"),
        sa.CheckConstraint(
            "status IN ('running', 'paused', 'finished', 'failed')", name="ck_sends_status"
        ),
    )
    op.create_table(
        "deliveries",
        sa.Column("send_id", sa.String(32), primary_key=True),
        sa.Column(
            "send", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("recipient", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        _when("retry_at"),
        sa.Column("claimed_by", sa.String(200)),
        _when("claimed_at"),
        _when("updated_at", nullable=False),
        sa.Column("event", sa.String(32)),
        sa.Column("event_detail", sa.Text),
        _when("event_at"),
        sa.UniqueConstraint("send", "subscriber_id", name="uq_deliveries_send_subscriber"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'skipped')",
            name="ck_deliveries_status",
        ),
    )
    op.create_index("ix_deliveries_send_status", "deliveries", ["send", "status", "subscriber_id"])
    op.create_index("ix_deliveries_provider_id", "deliveries", ["provider_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("sends")
