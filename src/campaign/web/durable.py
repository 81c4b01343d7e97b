"""Writes from the web that are never lost: retried while the database is busy, else spooled.

An unsubscribe, a preferences form or a webhook may arrive while a long write (an
import, a send's claim) holds SQLite's lock. Each is retried until `WRITE_DEADLINE`;
if the lock still holds, the write is appended to a spool file (one JSON line,
fsynced) and answered as accepted. `maintained` applies the spool a few seconds
later, and prunes webhook event ids older than the services' replay window.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, delete
from sqlalchemy.exc import OperationalError

from campaign.web.site import Site  # first: it loads the ledger, which the webhooks import
from campaign.web.tables import webhook_events
from campaign.web.webhooks import Event, Outcome, record

log = logging.getLogger("campaign.web")

T = TypeVar("T")

WRITE_DEADLINE = 20.0
"""Seconds a web write keeps retrying a busy database before it is spooled."""
REPLAY_WINDOW = timedelta(days=30)
"""Longer than any service retries a webhook (SendGrid: 72 hours; SNS: days), so an id
pruned after it cannot come back."""
MAINTAIN_EVERY = 5.0
"""Seconds between two passes over the spool."""
PRUNE_EVERY = 3600.0
"""Seconds between two prunings of webhook event ids."""
_BUSY = ("database is locked", "database table is locked", "database is busy")
_PG_BUSY = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def is_busy(exc: OperationalError) -> bool:
    """Whether `exc` says only that another writer holds a lock (worth retrying)."""
    if getattr(exc.orig, "sqlstate", None) in _PG_BUSY:
        return True
    return any(text in str(exc.orig).lower() for text in _BUSY)


def retrying(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)`, retried with backoff while the database is busy, for
    `WRITE_DEADLINE` seconds."""
    until = time.monotonic() + WRITE_DEADLINE
    delay = 0.02
    while True:
        try:
            return function(*args, **kwargs)
        except OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > until:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class Spool:
    """An append-only file of writes still to apply: one JSON object a line.

    Appends and the drain take an exclusive file lock, so several server processes
    may share one. The file is readable by its owner only (it holds addresses)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, op: str, args: dict[str, Any]) -> None:
        line = json.dumps({"op": op, "args": args}, separators=(",", ":")) + "\n"
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def drain(self, apply: Callable[[str, dict[str, Any]], None]) -> int:
        """Apply every spooled write in order; those still meeting a busy database stay,
        as does everything after the first of them (order matters: unsubscribe, then resubscribe).
        Returns how many were applied."""
        if not self.path.exists():
            return 0
        with self._locked():
            lines = self.path.read_text().splitlines()
            done = 0
            for line in lines:
                item = json.loads(line)
                try:
                    apply(item["op"], item["args"])
                except OperationalError as exc:
                    if not is_busy(exc):
                        raise
                    break
                done += 1
            rest = lines[done:]
            if rest:
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text("".join(line + "\n" for line in rest))
                temporary.chmod(0o600)
                temporary.replace(self.path)
            else:
                self.path.unlink()
        return done


def spool_of(site: Site) -> Spool:
    """The workspace's spool (next to campaign.toml, hidden)."""
    return Spool(site.config.workspace / ".campaign" / "spool.jsonl")


# ---------------------------------------------------------------- the writes


def _apply(site: Site, op: str, args: dict[str, Any]) -> None:
    """Apply one write as the spool recorded it."""
    if op == "unsubscribe":
        site.store.unsubscribe(**args)
    elif op == "resubscribe":
        site.store.resubscribe(**args)
    elif op == "preferences":
        site.store.set_preferences(
            args["public_id"],
            lists=set(args["lists"]),
            topics=set(args["topics"]),
            name=args["name"],
            first_name=args.get("first_name"),
            last_name=args.get("last_name"),
        )
    elif op == "webhook_events":  # each once: a replay of one already applied is skipped
        record(site.engine, [Event(**item) for item in args["events"]], site.store)
    else:
        raise ValueError(f"unknown spooled write {op!r}")


async def write(site: Site, op: str, **args: Any) -> bool:
    """Apply a write from a page now (retrying a busy database), else spool it.
    True when applied now; False when spooled (it will be applied within seconds)."""
    try:
        await site.db(retrying, _apply, site, op, args)
    except OperationalError as exc:
        if not is_busy(exc):
            raise
        spool_of(site).append(op, args)
        log.warning("database busy: %s spooled, to be applied shortly", op)
        return False
    return True


async def record_webhook(site: Site, events: list[Event]) -> tuple[Outcome, int]:
    """Record a webhook's events, each once, retrying a busy database; an event the lock
    still holds is spooled (applied within seconds). The outcome, and how many were spooled."""
    return await site.db(_record_each, site, events)


def _record_each(site: Site, events: list[Event]) -> tuple[Outcome, int]:
    outcome, queued = Outcome(), 0
    for event in events:
        try:
            one = retrying(record, site.engine, [event], site.store)
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            # `record` released its claim, so the spooled copy is applied exactly once.
            spool_of(site).append("webhook_events", {"events": [asdict(event)]})
            log.warning("database busy: a %s event spooled, to be applied shortly", event.service)
            queued += 1
            continue
        outcome.recorded += one.recorded
        outcome.replayed += one.replayed
    return outcome, queued


# ---------------------------------------------------------------- upkeep


def prune_webhook_events(engine: Engine, *, now: datetime | None = None) -> int:
    """Forget webhook event ids older than the replay window; how many went."""
    before = (now or datetime.now(UTC)) - REPLAY_WINDOW
    with engine.begin() as connection:
        return connection.execute(
            delete(webhook_events).where(webhook_events.c.received_at < before)
        ).rowcount


def upkeep(site: Site, *, prune: bool) -> None:
    """One pass: apply what is spooled and, if `prune`, forget old webhook ids."""
    applied = spool_of(site).drain(lambda op, args: _apply(site, op, args))
    if applied:
        log.info("applied %d spooled writes", applied)
    if prune:
        prune_webhook_events(site.engine)


@asynccontextmanager
async def maintained(site: Site) -> AsyncIterator[None]:
    """Run `upkeep` at start-up and every `MAINTAIN_EVERY` seconds while the server runs."""

    async def loop() -> None:
        pruned = -PRUNE_EVERY
        while True:
            prune = time.monotonic() - pruned >= PRUNE_EVERY
            try:
                await site.db(upkeep, site, prune=prune)
                pruned = time.monotonic() if prune else pruned
            except Exception as exc:  # upkeep must outlive any one failure (a busy database)
                log.warning("upkeep postponed: %s", exc)
            await asyncio.sleep(MAINTAIN_EVERY)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
