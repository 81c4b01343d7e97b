"""Migration 0020 (the `held` state) on a database in use: a worker slot that a killed
dispatcher left keeps its row, on SQLite (which rebuilds `schedules`) and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, select, update

from campaign.db import alembic_config, connect
from campaign.dispatch import schedule_workers
from campaign.schedule import State, schedules

INSERT_SCHEDULE = (
    "INSERT INTO schedules (campaign, list_name, topics, send_at, timezone, compiled, "
    "source_hash, state, scheduled_at) VALUES ('dec-news', 'newsletter', '[]', "
    "'2026-12-01 16:00:00+00:00', 'UTC', '{}', 'h', 'running', '2026-11-27 17:00:00+00:00')"
)


def _alembic(engine: Engine, step: str) -> None:
    cfg = alembic_config()
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        if step == "down":
            command.downgrade(cfg, "0020_schedule_held@-1")
        else:
            command.upgrade(cfg, "heads")
        connection.commit()


def test_held_migration_keeps_a_left_worker_slot(db_url: str) -> None:
    engine = connect(db_url)
    _alembic(engine, "down")
    with engine.begin() as connection:
        connection.exec_driver_sql(INSERT_SCHEDULE)
        connection.exec_driver_sql(
            "INSERT INTO schedule_workers VALUES ('dec-news', 0, 'host:1:gone', "
            "'2026-12-01 16:01:00+00:00')"
        )
    _alembic(engine, "up")
    with engine.begin() as connection:
        slots = connection.execute(select(schedule_workers.c.worker_id)).scalars().all()
        assert slots == ["host:1:gone"]
        connection.execute(update(schedules).values(state=State.HELD))
        assert connection.execute(select(schedules.c.state)).scalar() == "held"
