"""Count a segment of a 100,000-subscriber list, and count signups against the rate limit.

    .venv/bin/python bench/segments.py [--subscribers N] [--postgres URL]

The subscribers are generated inside the database (as bench/stream.py does). Prints
how long `count_recipients` takes for a few conditions (what `campaign send --where`
shows before asking), and how many rate-limit checks per second one process makes
(one atomic upsert each). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _postgres import postgres_schema
from _report import emit
from stream import fill

from campaign.audience import segments
from campaign.audience.store import Store
from campaign.signup import flow

CONDITIONS = [
    "organisation = 'Org 5'",
    "organisation contains 'org 1' and email contains '7@'",
    "city = 'Denver' and not organisation in ('Org 1', 'Org 2')",
    "joined > 2023-06-01",
]


def run(label: str, store: Store) -> None:
    for condition in CONDITIONS:
        node = segments.parse(condition)
        started = time.perf_counter()
        count = store.count_recipients("bench", segment=node)
        ms = (time.perf_counter() - started) * 1000
        print(f"{label}: {count:>7,} match {condition!r} in {ms:,.0f} ms")
        emit("segments", f"count {label}: {condition}", ms, "ms", better="lower")
    started = time.perf_counter()
    checks = 2000
    for n in range(checks):
        flow.within_limit(store.engine, f"ip:{n % 50}", 20)
    rate = checks / (time.perf_counter() - started)
    print(f"{label}: {rate:,.0f} rate-limit checks/s (one upsert each)")
    emit("segments", f"rate-limit checks {label}", rate, "/s", better="higher")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--postgres", help="also run on this PostgreSQL (a schema of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run("sqlite", fill(f"sqlite:///{folder}/bench.db", args.subscribers))
    if args.postgres:
        with postgres_schema(args.postgres) as url:
            run("postgresql", fill(url, args.subscribers))


if __name__ == "__main__":
    main()
