"""Reports: each run of a send, the events after it, clicks per tracked link.

Revision ID: 0010_reports
Revises: 0004_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_reports"
down_revision = "0004_schedule"
branch_labels = None
depends_on = None


def _send() -> sa.Column[int]:
    return sa.Column(
        "send", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "send_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _send(),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_send_runs_send", "send_runs", ["send"])
    op.create_table(
        "campaign_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _send(),
        sa.Column("send_id", sa.String(32)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("hard", sa.Boolean),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_campaign_events_send_kind", "campaign_events", ["send", "kind"])
    op.create_index("ix_campaign_events_send_id", "campaign_events", ["send_id"])
    op.create_table(
        "link_clicks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _send(),
        sa.Column("link", sa.Integer, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.UniqueConstraint("send", "link", name="uq_link_clicks_send_link"),
    )
    op.create_table(
        "link_clickers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _send(),
        sa.Column("link", sa.Integer, nullable=False),
        sa.Column("subscriber", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_link_clickers_send_link", "link_clickers", ["send", "link"])


def downgrade() -> None:
    op.drop_table("link_clickers")
    op.drop_table("link_clicks")
    op.drop_table("campaign_events")
    op.drop_table("send_runs")
