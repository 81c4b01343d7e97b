"""Stream the recipients of a 1,000,000-subscriber list and print memory as it goes.

    .venv/bin/python bench/stream.py [--subscribers N] [--chunk 1000] [--postgres URL]

The subscribers are generated inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL), so setting up is quick. Every 100,000 recipients it
prints the current and peak resident memory: flat figures mean the stream holds one
chunk at a time, never the whole list. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy
from _postgres import postgres_schema

from campaign.audience import Store
from campaign.db import connect

NOW = "'2024-01-01 00:00:00.000000'"

SQLITE_FILL = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO subscribers (id, public_id, email, email_hash, name, first_name, last_name, fields,
                         status, soft_bounces, created_at, updated_at)
SELECT i, 'pid' || i, 'person' || i || '@example.org', 'hash' || i, 'Person ' || i, 'Person', '' || i,
       '{{"city": "Denver", "organisation": "Org ' || (i % 97) || '"}}',
       CASE WHEN i % 50 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, 0, {NOW}, {NOW}
FROM n
"""
POSTGRES_FILL = f"""
INSERT INTO subscribers (id, public_id, email, email_hash, name, first_name, last_name, fields,
                         status, soft_bounces, created_at, updated_at)
SELECT i, 'pid' || i, 'person' || i || '@example.org', 'hash' || i, 'Person ' || i, 'Person', '' || i,
       json_build_object('city', 'Denver', 'organisation', 'Org ' || (i % 97)),
       CASE WHEN i % 50 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, 0, {NOW}, {NOW}
FROM generate_series(1, :count) AS i
"""
MEMBERS = f"INSERT INTO list_members (list_id, subscriber_id, status, added_at) SELECT 1, id, 'active', {NOW} FROM subscribers"
SUPPRESS = f"""INSERT INTO suppressions (email_hash, reason, source, created_at)
SELECT email_hash, 'bounced', 'bench', {NOW} FROM subscribers WHERE id % 101 = 0"""


def memory_mb() -> tuple[float, float]:
    """Resident memory now and its peak so far (VmRSS, VmHWM from Linux /proc), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def fill(url: str, count: int) -> Store:
    engine = connect(url)
    started = time.perf_counter()
    with engine.begin() as connection:
        fill_sql = POSTGRES_FILL if connection.dialect.name == "postgresql" else SQLITE_FILL
        connection.execute(sqlalchemy.text(fill_sql), {"count": count})
        connection.execute(
            sqlalchemy.text(f"INSERT INTO lists (id, name, created_at) VALUES (1, 'bench', {NOW})")
        )
        connection.execute(sqlalchemy.text(MEMBERS))
        connection.execute(sqlalchemy.text(SUPPRESS))  # text(): its % is no placeholder
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")  # as `subscribers import` does
    print(f"generated {count:,} subscribers in {time.perf_counter() - started:.1f} s")
    return Store(engine)


def stream(label: str, store: Store, chunk: int) -> None:
    expected = store.count_recipients("bench")
    rss, peak = memory_mb()
    print(
        f"{label}: streaming {expected:,} recipients, chunk {chunk}; RSS {rss:.1f} MB, peak {peak:.1f} MB"
    )
    started = time.perf_counter()
    cpu = time.process_time()
    seen = 0
    for recipient in store.recipients("bench", chunk=chunk):
        seen += 1
        if seen % 100_000 == 0:
            elapsed = time.perf_counter() - started
            rss, peak = memory_mb()
            print(
                f"  {seen:>9,} recipients  {elapsed:6.1f} s  {seen / elapsed:8,.0f}/s  "
                f"RSS {rss:6.1f} MB  peak {peak:6.1f} MB  (last: {recipient.email})"
            )
    elapsed = time.perf_counter() - started
    print(
        f"  done: {seen:,} recipients in {elapsed:.1f} s wall, {time.process_time() - cpu:.1f} s CPU; "
        f"peak RSS {memory_mb()[1]:.1f} MB"
    )
    assert seen == expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument(
        "--postgres", help="also run on this PostgreSQL (in a schema of its own, dropped after)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stream("sqlite", fill(f"sqlite:///{folder}/bench.db", args.subscribers), args.chunk)
    if args.postgres:
        with postgres_schema(args.postgres) as url:
            stream("postgresql", fill(url, args.subscribers), args.chunk)


if __name__ == "__main__":
    main()
