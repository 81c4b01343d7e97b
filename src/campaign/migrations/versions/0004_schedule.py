"""Schedules: frozen campaigns waiting for `campaign dispatch`, and the workers' leases.

Revision ID: 0004_schedule
Revises: 0002_send
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_schedule"
down_revision = "0002_send"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("campaign", sa.String(200), primary_key=True),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("topics", sa.Text, nullable=False),
        _when("send_at", nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("compiled", sa.Text, nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _when("scheduled_at", nullable=False),
        _when("started_at"),
        _when("finished_at"),
        sa.Column("detail", sa.Text),
        sa.CheckConstraint(
            "state IN ('scheduled', 'running', 'paused', 'finished', 'failed', 'missed')",
            name="ck_schedules_state",
        ),
    )
    op.create_index("ix_schedules_state_send_at", "schedules", ["state", "send_at"])
    op.create_table(
        "schedule_workers",
        sa.Column(
            "campaign", sa.String(200), sa.ForeignKey("schedules.campaign"), primary_key=True
        ),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("worker_id", sa.String(200), nullable=False),
        _when("lease_until", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_workers")
    op.drop_index("ix_schedules_state_send_at", table_name="schedules")
    op.drop_table("schedules")
