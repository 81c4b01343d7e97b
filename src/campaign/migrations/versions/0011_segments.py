"""Segments: the condition a send (and a schedule) chose its recipients by.

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


def downgrade() -> None:
    for table in ("sends", "schedules"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("segment")
