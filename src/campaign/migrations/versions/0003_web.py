"""Web: webhook events seen (replay protection) and the forward log (rate limits).

Revision ID: 0003_web
Revises: 0001_audience
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_web"
down_revision = "0001_audience"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("service", "event_id", name="uq_webhook_events_service_event"),
    )
    op.create_table(
        "forward_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_hash", sa.String(64), nullable=False),
        sa.Column("ip_hash", sa.String(64), nullable=False),
        sa.Column("recipients", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_forward_log_subscriber_hash", "forward_log", ["subscriber_hash"])
    op.create_index("ix_forward_log_ip_hash", "forward_log", ["ip_hash"])
    op.create_index("ix_forward_log_sent_at", "forward_log", ["sent_at"])


def downgrade() -> None:
    op.drop_table("forward_log")
    op.drop_table("webhook_events")
