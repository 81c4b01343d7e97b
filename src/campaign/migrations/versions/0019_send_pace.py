"""The batches of each send in its rate-limit window, shared by every process sending it.

Revision ID: 0019_send_pace
Revises: 0004_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_send_pace"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_pace",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "send", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("reserved_at", sa.Float, nullable=False),
        sa.Column("done_at", sa.Float),
    )
    op.create_index("ix_send_pace_send", "send_pace", ["send"])


def downgrade() -> None:
    op.drop_index("ix_send_pace_send", table_name="send_pace")
    op.drop_table("send_pace")
