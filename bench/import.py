"""Time `subscribers import` of a generated CSV (default 100,000 rows) on SQLite, and PostgreSQL if given.

    .venv/bin/python bench/import.py [--rows N] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Prints the seconds for a first import (everyone new) and a second run of the same
file (everyone unchanged). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from _postgres import postgres_schema
from _report import emit

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.db import connect


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email Address", "First Name", "Last Name", "Organisation", "City"])
        for i in range(rows):
            writer.writerow(
                [f"Person.{i}@Example.org", f"First{i}", f"Last{i}", f"Org {i % 97}", "Denver"]
            )


def run(label: str, url: str, path: Path, rows: int) -> None:
    store = Store(connect(url))
    for attempt in ("first import", "same file again"):
        started, cpu = time.perf_counter(), time.process_time()
        report = import_csv(store, path, "newsletter", ["events"])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{label:10} {attempt:16} {rows:>9,} rows {elapsed:6.2f} s wall {cpu:6.2f} s CPU "
            f"{rows / elapsed:8,.0f} rows/s  (added {report.added:,}, unchanged {report.unchanged:,})"
        )
        emit("import", f"{rows:,}-row CSV, {attempt}, {label}", elapsed, "s", better="lower")
    assert store.count_recipients("newsletter") == rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres", help="also run on this PostgreSQL (in a schema of its own, dropped after)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "subscribers.csv"
        write_csv(path, args.rows)
        print(
            f"CSV: {path.stat().st_size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        run("sqlite", f"sqlite:///{folder}/bench.db", path, args.rows)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                run("postgresql", url, path, args.rows)


if __name__ == "__main__":
    main()
