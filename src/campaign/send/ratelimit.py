"""A messages-per-second limit shared by every process sending one campaign.

Each batch takes a row in `send_pace` before it is claimed, n/rate seconds after the
batch of n before it, and counts against the send's window from then until a second
after its reply: the service cannot have
received it later than the reply, so however requests are delayed on the way, no
second at the service holds more than `rate` messages, whichever hosts and
processes (`campaign send`, every `campaign dispatch`) share the send. The rows live
in the send's database: PostgreSQL serialises reservations with an advisory lock per
send (and its clock is the one every host reads), SQLite with its write lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    Table,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)

from campaign.db import metadata
from campaign.send.tables import write

pace = Table(
    "send_pace",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("send", Integer, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("messages", Integer, nullable=False),
    Column("reserved_at", Float, nullable=False),
    Column("done_at", Float),
)

STALE = 60.0
"""A batch still without a reply after this long belongs to a process that died: it stops counting."""
IN_FLIGHT_POLL = 0.02
"""How often to look again while the window is full of batches still awaiting their reply."""


def _now(connection: Connection) -> float:
    if connection.dialect.name == "postgresql":
        return float(
            connection.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        )
    return time.time()


def reserve(engine: Engine, send: int, messages: int, rate: float) -> tuple[int | None, float]:
    """Room for `messages` in the send's window: (the reservation, 0), or (None, seconds to wait)."""
    window = max(1.0, 1.0 / rate)
    capacity = max(rate * window, messages)
    with write(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' pace ' || :send))"
                ),
                {"send": str(send)},
            )
        now = _now(connection)
        connection.execute(
            delete(pace).where(
                pace.c.send == send,
                or_(pace.c.done_at <= now - window, pace.c.reserved_at <= now - STALE),
            )
        )
        rows = connection.execute(
            select(pace.c.messages, pace.c.reserved_at, pace.c.done_at).where(pace.c.send == send)
        ).all()
        # Paced as well as capped: a batch of n is followed by n/rate seconds of quiet.
        spaced = max((row.reserved_at + row.messages / rate for row in rows), default=now)
        over = sum(row.messages for row in rows) + messages - capacity
        if spaced > now:
            return None, spaced - now
        if over <= 0:
            reserved = connection.execute(
                insert(pace).values(send=send, messages=messages, reserved_at=now)
            ).inserted_primary_key
            assert reserved is not None
            return int(reserved[0]), 0.0
    for row in sorted((r for r in rows if r.done_at is not None), key=lambda r: r.done_at):
        over -= row.messages
        if over <= 0:
            return None, max(row.done_at + window - now, 0.001)
    return None, IN_FLIGHT_POLL


def replied(engine: Engine, reservation: int, messages: int) -> None:
    """The batch holds `messages` (fewer than reserved, perhaps none) and has its reply."""
    with write(engine) as connection:
        if messages:
            connection.execute(
                update(pace)
                .where(pace.c.id == reservation)
                .values(messages=messages, done_at=_now(connection))
            )
        else:
            connection.execute(delete(pace).where(pace.c.id == reservation))


@dataclass
class Slot:
    """One batch's place in the window; `took` says how many messages the claim found."""

    reservation: int | None = None
    messages: int = 0

    def took(self, messages: int) -> None:
        self.messages = messages


class RateLimiter:
    """`rate` messages a second for one send, across processes; a rate of 0 means no limit.

    A batch is `paced()` from its turn until its reply: within it, one turn at a time per
    process waits for room in the window; the claim says how many it took (`slot.took(n)`)."""

    def __init__(self, engine: Engine, send: int, rate: float, batch: int) -> None:
        self.engine, self.send, self.rate, self.batch = engine, send, rate, batch
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def paced(self) -> AsyncIterator[Slot]:
        """One batch's slot, given back with its size once the batch is over (sent or not)."""
        slot = Slot()
        try:
            yield slot
        finally:
            if slot.reservation is not None:
                await asyncio.to_thread(replied, self.engine, slot.reservation, slot.messages)

    @asynccontextmanager
    async def turn(
        self, slot: Slot, waiting: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[None]:
        """Wait for room in the window, and hold the turn while the caller claims its batch.
        `waiting` is awaited once before any wait (the caller's chance to write what it holds
        rather than sit on it)."""
        if self.rate <= 0:
            yield
            return
        if waiting is not None and self._turn.locked():
            await waiting()
            waiting = None
        async with self._turn:
            while True:
                slot.reservation, wait = await asyncio.to_thread(
                    reserve, self.engine, self.send, self.batch, self.rate
                )
                if slot.reservation is not None:
                    break
                if waiting is not None:
                    await waiting()
                    waiting = None
                await asyncio.sleep(wait)
            yield
