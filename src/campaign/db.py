"""One database for everything: the audience, the send ledger, schedules, web state.

SQLite (a file in the workspace) is the embedded default; a postgresql:// URL lets
the cron sender and the web host share one database. Migrations (alembic) run on
first use, so a new workspace needs no setup step; they run under a lock, so any
number of commands may start at once on a new database. Otherwise a command pays one
query to see that the schema is current, and never imports alembic.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

from campaign.errors import ConfigError
from campaign.migrations.heads import schema_heads

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"

BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite write waits for the lock: longer than any single write transaction
(imports and other bulk writes commit in chunks of well under a second)."""

metadata = MetaData()
"""Every table of the package, declared in the module that owns it (audience/tables.py, ...)."""


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def dialect_insert(connection: Connection, table: Table) -> Any:
    """The INSERT of the connection's dialect, which has ON CONFLICT (an upsert). Only that
    dialect's module is imported: PostgreSQL's costs a SQLite command a fifth of its start-up."""
    return import_module(f"sqlalchemy.dialects.{connection.dialect.name}").insert(table)


def insert_ignoring(connection: Connection, table: Table, keys: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING (another process may have won the race)."""
    return dialect_insert(connection, table).on_conflict_do_nothing(index_elements=list(keys))


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # The busy timeout first: switching a new file to WAL waits for the other processes' locks.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at every head revision: one query, no alembic."""
    try:
        with engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return frozenset(versions.scalars()) == schema_heads()
    except (OperationalError, ProgrammingError):
        return False  # a new database (or none at all: `migrate` says which)


def alembic_config() -> AlembicConfig:
    """Alembic's settings for our migrations (importing alembic: only when migrating)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (every area's branch of migrations).

    The check of the current version and the upgrade run under one lock, so commands
    started at the same moment on a new database migrate it once, one after the other:
    a transaction-scoped advisory lock on PostgreSQL (per schema), an exclusive
    transaction on SQLite. Without it, each would create the same tables.
    """
    from alembic import command

    cfg = alembic_config()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext('campaign migrate ' || coalesce(current_schema(), '')))"
            )
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
        connection.commit()


_engines: dict[str, Engine] = {}


def connect(url: str) -> Engine:
    """An engine for `url`, migrated to the newest schema (once per process and URL)."""
    if url not in _engines:
        try:
            engine = create_engine(normalise_url(url), pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ValueError):
            raise ConfigError(
                f"not a database URL: {shown_url(url)} (try sqlite:///campaign.db or postgresql://...)"
            ) from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            if not schema_is_current(engine):
                migrate(engine)
        except OperationalError as exc:
            engine.dispose()
            raise ConfigError(
                f"cannot open the database {shown_url(url)}: {str(exc.orig).strip()}"
            ) from None
        _engines[url] = engine
    return _engines[url]


def shown_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def dispose(url: str) -> None:
    """Close the pooled connections to `url` (tests drop their schema afterwards)."""
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
