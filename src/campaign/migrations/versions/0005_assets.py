"""Assets: the images of sent and scheduled campaigns, by fingerprinted name.

Revision ID: 0005_assets
Revises: 0004_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_assets"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("assets")
