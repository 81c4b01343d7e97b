"""Leases: how a sender shows it is alive, whatever its PID or host.

A sender (one `worker_id`) holds a row in `send_leases` whose `lease_until` it pushes
forward while it works: at every claim, and from a heartbeat (`Keeper`) while a slow
request is on its way. A claim whose worker has no live lease is dead, so a sender
killed as PID 1 in a container, one of two hosts sharing a hostname, or one whose PID
was reused all recover the same way: once the lease runs out, the next run calls that
worker's in-flight rows unknown and carries on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import Column, Connection, Engine, Float, String, Table, delete, select
from sqlalchemy.exc import SQLAlchemyError

from campaign.audience.tables import UTCDateTime, utcnow
from campaign.db import dialect_insert, metadata

DEFAULT_SECONDS = 60.0
"""How long a claim outlives its last sign of life: longer than any one provider request."""

send_leases = Table(
    "send_leases",
    metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("seconds", Float, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
)


def touch(connection: Connection, worker_id: str, now: datetime) -> None:
    """Renew `worker_id`'s lease at a claim, in the claim's transaction, unless it was renewed
    within the last third of its length: most claims then only read it, and the claims of one
    sender's concurrent workers do not queue for its lease row."""
    held = connection.execute(
        select(send_leases.c.seconds, send_leases.c.lease_until).where(
            send_leases.c.worker_id == worker_id
        )
    ).first()
    if held is None:
        renew(connection, worker_id, now, DEFAULT_SECONDS)
    elif held.lease_until - now < timedelta(seconds=held.seconds * 2 / 3):
        renew(connection, worker_id, now, held.seconds)


def renew(connection: Connection, worker_id: str, now: datetime, seconds: float) -> None:
    """Push `worker_id`'s lease to now + `seconds`, in the caller's transaction."""
    values = {"seconds": seconds, "lease_until": now + timedelta(seconds=seconds)}
    connection.execute(
        dialect_insert(connection, send_leases)
        .values(worker_id=worker_id, **values)
        .on_conflict_do_update(index_elements=["worker_id"], set_=values)
    )


def live(connection: Connection, workers: Iterable[str], now: datetime) -> set[str]:
    """Those of `workers` whose lease has not run out."""
    wanted = [w for w in workers if w]
    if not wanted:
        return set()
    return set(
        connection.execute(
            select(send_leases.c.worker_id).where(
                send_leases.c.worker_id.in_(wanted), send_leases.c.lease_until >= now
            )
        ).scalars()
    )


def end(engine: Engine, worker_id: str) -> None:
    """Give the lease up (the worker finished; it holds no claims any more)."""
    with engine.begin() as connection:
        connection.execute(delete(send_leases).where(send_leases.c.worker_id == worker_id))


class Keeper:
    """Holds `worker_id`'s lease for a block: taken on entry, renewed every third of its
    length from a thread (so a request that hangs the event loop's work still counts as
    alive), given up on a clean exit. A killed process renews nothing: its lease runs out."""

    def __init__(self, engine: Engine, worker_id: str, seconds: float = DEFAULT_SECONDS) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)

    def _renew(self) -> None:
        with self.engine.begin() as connection:
            renew(connection, self.worker_id, utcnow(), self.seconds)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self._renew()
            except SQLAlchemyError:
                continue  # the database is away: try again; meanwhile the lease may run out

    def __enter__(self) -> Keeper:
        self._renew()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        end(self.engine, self.worker_id)
