"""Import checkpoints: how far an import committed, so a rerun continues where it stopped.

Revision ID: 0005_import_progress
Revises: 0004_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_import_progress"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_progress",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("rows_done", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_progress")
