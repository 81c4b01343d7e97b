"""Run every benchmark, print one table, and compare it with bench/results.md.

    .venv/bin/python bench/run.py            # run, print, compare
    .venv/bin/python bench/run.py --write    # ... and record the figures in bench/results.md
    .venv/bin/python bench/run.py --only send,import

Each script in PLAN runs as its own process (its figures and peak memory are its
own) and reports its headline figures through bench/_report.py. A figure more
than 20% worse than the one in results.md is flagged. The whole plan takes under
10 minutes on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.md"
POSTGRES = os.environ.get("CAMPAIGN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TOLERANCE = 0.20

PLAN: list[tuple[str, list[str]]] = [
    ("build", ["build.py", "--runs", "10"]),
    ("startup", ["startup.py", "--runs", "7"]),
    ("personalise", ["personalise.py", "--count", "20000"]),
    ("send", ["send.py", "--size", "100000", "--provider", "both"]),
    ("send", ["send.py", "--size", "1000000", "--provider", "postmark"]),
    ("send", ["send.py", "--size", "100000", "--provider", "postmark", "--postgres", POSTGRES]),
    ("import", ["import.py", "--rows", "100000"]),
    ("preview", ["preview.py", "--rounds", "10", "--browser"]),
    ("reports", ["reports.py", "--size", "100000"]),
    ("segments", ["segments.py", "--postgres", POSTGRES]),
]


@dataclass(frozen=True)
class Row:
    area: str
    row: str
    value: float
    unit: str
    better: str

    @property
    def key(self) -> tuple[str, str]:
        return self.area, self.row

    def worse_than(self, old: Row) -> float | None:
        """How much worse than `old`, as a fraction, when beyond the tolerance."""
        if old.value == 0:
            return None
        change = (self.value - old.value) / old.value
        worse = change if self.better == "lower" else -change
        return worse if worse > TOLERANCE else None


def machine() -> str:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    mem_kb = (
        next(
            (
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.0f} GiB memory, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def read_results() -> dict[tuple[str, str], Row]:
    if not RESULTS.exists():
        return {}
    rows = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"-?[\d,]+(\.\d+)?", cells[2]):
            row = Row(
                cells[0], cells[1], float(cells[2].replace(",", "")), cells[3], cells[4].split()[0]
            )
            rows[row.key] = row
    return rows


NOTES = "\n## Notes"


def kept_notes() -> str:
    """What results.md says below its table, from `## Notes` on: written by hand, kept."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    return text[text.index(NOTES) :] if NOTES in text else ""


def shown(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def table(rows: list[Row]) -> str:
    lines = ["| area | figure | value | unit | better |", "|---|---|---:|---|---|"]
    lines += [
        f"| {r.area} | {r.row} | {shown(r.value)} | {r.unit} | {r.better} is better |" for r in rows
    ]
    return "\n".join(lines)


def run_plan(only: set[str] | None) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    failures: list[str] = []
    for area, command in PLAN:
        if only and area not in only:
            continue
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
            path = Path(handle.name)
        print(f"\n== {area}: bench/{' '.join(command)}", flush=True)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(BENCH / command[0]), *command[1:]],
            env={**os.environ, "BENCH_ROWS": str(path)},
            check=False,
        )
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
        if done.returncode != 0:
            failures.append(f"bench/{' '.join(command)} exited {done.returncode}")
        rows += [Row(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        path.unlink()
    return rows, failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--write", action="store_true", help="record the figures in bench/results.md"
    )
    parser.add_argument(
        "--only", help="comma-separated areas: " + ", ".join(dict.fromkeys(a for a, _ in PLAN))
    )
    args = parser.parse_args()

    started = time.monotonic()
    rows, failures = run_plan(set(args.only.split(",")) if args.only else None)
    previous = read_results()
    print(f"\nAll figures ({time.monotonic() - started:.0f} s; {machine()}):\n")
    print(table(rows))
    slower = [
        f"{r.area}: {r.row}: {shown(r.value)} {r.unit}, {worse:.0%} worse than {shown(previous[r.key].value)} in results.md"
        for r in rows
        if r.key in previous and (worse := r.worse_than(previous[r.key])) is not None
    ]
    for line in slower:
        print(f"SLOWER  {line}")
    for line in failures:
        print(f"FAILED  {line}")
    if args.write:
        if args.only:
            kept = [r for r in previous.values() if r.area not in set(args.only.split(","))]
            rows = kept + rows
        RESULTS.write_text(
            "# Benchmark results\n\n"
            f"Measured by `.venv/bin/python bench/run.py --write` on {date.today().isoformat()}.\n\n"
            f"Machine: {machine()}.\n\n"
            f"{table(rows)}\n{kept_notes()}",
            encoding="utf-8",
        )
        print(f"\nwrote {RESULTS}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
