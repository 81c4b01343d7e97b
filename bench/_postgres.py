"""A PostgreSQL schema of a bench run's own, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy

from campaign.db import dispose, normalise_url


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """Yield a database URL whose tables live in a new schema; drop the schema at the end."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{server_url}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        dispose(url)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
