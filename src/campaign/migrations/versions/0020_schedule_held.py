"""Schedules may be `held`: preflight refused them at dispatch time, nothing was sent.

Revision ID: 0020_schedule_held
Revises: 0004_schedule
"""

from alembic import op

revision = "0020_schedule_held"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None

_STATES = ("scheduled", "running", "paused", "finished", "failed", "missed")


def _allow(states: tuple[str, ...]) -> None:
    """Replace the CHECK on `schedules.state` (SQLite rebuilds the table to change it)."""
    listed = ", ".join(f"'{state}'" for state in states)
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint("ck_schedules_state", type_="check")
        batch.create_check_constraint("ck_schedules_state", f"state IN ({listed})")


def upgrade() -> None:
    _allow((*_STATES, "held"))


def downgrade() -> None:
    op.execute("UPDATE schedules SET state = 'failed' WHERE state = 'held'")
    _allow(_STATES)
