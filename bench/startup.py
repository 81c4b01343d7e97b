"""Issue 19's start-up rows: `campaign --help`, `campaign status SLUG` and `campaign lists`
as whole processes, next to the official MJML CLI (node) compiling the example, measured
back to back.

    .venv/bin/python bench/startup.py [SLUG] [--runs N]

CPU time (user + system, from wait4) is the figure: on a shared machine wall time
drifts with the load, and the ratio to the node CLI, measured in the same run, is
what compares across runs. Prints medians and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _report import emit
from build import ensure_node_mjml, process_ms

from campaign.compile import render_mjml
from campaign.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("slug", nargs="?", default="2018-11-wsr-primer")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    source = out / "campaign.mjml"
    source.write_text(render_mjml(load_config(ROOT), args.slug), encoding="utf-8")
    campaign = [str(Path(sys.executable).parent / "campaign"), "--workspace", str(ROOT)]
    commands = {
        "`campaign --help`": [*campaign, "--help"],
        f"`campaign status {args.slug}`": [*campaign, "status", args.slug],
        "`campaign lists`": [*campaign, "lists"],
        "node mjml CLI": [
            str(ensure_node_mjml()),
            str(source),
            "-o",
            str(out / "node.html"),
            "--config.validationLevel",
            "skip",
        ],
    }
    process_ms(1, commands["`campaign --help`"])  # the database's first use migrates it
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):  # interleaved, so the load is shared alike
        for name, command in commands.items():
            cpu[name].append(process_ms(1, command)[1])
    median = {name: statistics.median(values) for name, values in cpu.items()}
    node = median["node mjml CLI"]
    print(f"medians of {args.runs} runs, CPU (user+sys); load average {os.getloadavg()[0]:.1f}")
    for name, value in median.items():
        print(f"{name:44}{value:>8.0f} ms{value / node:>8.2f}x node")
    for name in list(commands)[:-1]:
        emit("startup", f"{name} as a process (CPU)", median[name], "ms", better="lower")
        emit(
            "startup", f"{name} / node mjml CLI (CPU)", median[name] / node, "ratio", better="lower"
        )


if __name__ == "__main__":
    main()
