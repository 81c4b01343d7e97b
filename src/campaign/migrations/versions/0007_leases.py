"""Senders' leases (liveness by lease, not PID) and how an unknown delivery was resolved.

Revision ID: 0007_leases
Revises: 0004_schedule
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_leases"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_leases",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("deliveries", sa.Column("resolved_by", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("resolved_by")
    op.drop_table("send_leases")
