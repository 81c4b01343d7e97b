"""Webhook tokens already used (Mailgun's replay protection).

Revision ID: 0008_webhook_tokens
Revises: 0004_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_webhook_tokens"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("service", "token", name="uq_webhook_tokens_service_token"),
    )
    op.create_index("ix_webhook_tokens_used_at", "webhook_tokens", ["used_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_tokens_used_at", table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
