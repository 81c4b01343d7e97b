"""Schedules may be `held`: preflight refused them at dispatch time, nothing was sent.

Revision ID: 0020_schedule_held
Revises: 0004_schedule
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_schedule_held"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None

_STATES = ("scheduled", "running", "paused", "finished", "failed", "missed")


def _allow(states: tuple[str, ...]) -> None:
    """Replace the CHECK on `schedules.state`. SQLite rebuilds the table to change it, and
    dropping the old one would break the foreign key of the worker slots that a killed
    dispatcher left: those rows are set aside and put back, in the same transaction."""
    bind = op.get_bind()
    workers = sa.table(
        "schedule_workers",
        sa.column("campaign"),
        sa.column("slot"),
        sa.column("worker_id"),
        sa.column("lease_until"),
    )
    kept = []
    if bind.dialect.name == "sqlite":
        kept = [dict(row) for row in bind.execute(sa.select(workers)).mappings()]
        bind.execute(sa.delete(workers))
    listed = ", ".join(f"'{state}'" for state in states)
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint("ck_schedules_state", type_="check")
        batch.create_check_constraint("ck_schedules_state", f"state IN ({listed})")
    if kept:
        bind.execute(sa.insert(workers), kept)


def upgrade() -> None:
    _allow((*_STATES, "held"))


def downgrade() -> None:
    op.execute("UPDATE schedules SET state = 'failed' WHERE state = 'held'")
    _allow(_STATES)
