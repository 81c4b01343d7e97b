"""Issue 9's build row: `campaign build` in-process and as a whole process, next to the
official MJML compiler (npm package `mjml`, run with node on the same MJML source).
As processes, `campaign build` runs cold (its cache entry deleted first: the whole
compile) and warm (unchanged since the last build: reused from the cache), each round
running cold, warm and the node CLI back to back so the ratios share the machine's load.
The Python side's MJML -> HTML is mjml-python (MRML) with the build's rewrites around it.

    .venv/bin/python bench/build.py [SLUG] [--runs N]

Installs mjml under bench/node_modules with npm if it is missing. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _report import emit

from campaign.compile import build, cache, campaign_folder, render_mjml
from campaign.compile.html import inline_css, mjml_to_html
from campaign.compile.mjml_check import after_mjml, before_mjml
from campaign.config import load_config

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def median_ms(runs: int, action: Callable[[], object]) -> float:
    return medians(runs, action)[0]


def medians(runs: int, action: Callable[[], object]) -> tuple[float, float]:
    """Median wall time and median CPU time of this process, in ms, of `runs` calls of `action`."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def process_cpu_ms(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from wait4) of running `command` once, in ms:
    on a busy machine the CPU time is the steadier figure."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def process_ms(runs: int, command: list[str]) -> tuple[float, float]:
    """Median wall time and median CPU time of running `command` `runs` times, in ms."""
    times = [process_cpu_ms(command) for _ in range(runs)]
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


def interleaved(
    runs: int, steps: dict[str, Callable[[], tuple[float, float]]]
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) of each step, the steps run in turn `runs` times."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            times[name].append(step())
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in times.items()
    }


def ensure_node_mjml() -> Path:
    """bench/node_modules/.bin/mjml, installed with npm on first use."""
    cli = BENCH / "node_modules" / ".bin" / "mjml"
    if not cli.exists():
        if not shutil.which("npm"):
            sys.exit("npm is needed to install the official mjml compiler (apt-get install npm)")
        print("installing mjml with npm under bench/node_modules ...", file=sys.stderr)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(BENCH),
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--silent",
            ],
            check=True,
        )
    return cli


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("slug", nargs="?", default="2018-11-wsr-primer")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    config = load_config(ROOT)
    out = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    source_file = out / "campaign.mjml"
    started = time.perf_counter()
    compiled = build(config, args.slug, use_cache=False)
    first = (time.perf_counter() - started) * 1000
    source = render_mjml(config, args.slug)
    source_file.write_text(source, encoding="utf-8")
    size = len(compiled.html.encode())
    build_ms, build_cpu = medians(args.runs, lambda: build(config, args.slug, use_cache=False))

    def compile_mjml() -> str:
        """MJML -> HTML as the build does it: mjml-python, with the rewrites around it."""
        return after_mjml(mjml_to_html(before_mjml(source)))

    mjml_ms, mjml_cpu = medians(args.runs, compile_mjml)
    html = compile_mjml()
    premailer_ms, premailer_cpu = medians(args.runs, lambda: inline_css(html))

    process_runs = max(3, args.runs // 4)
    command = [
        str(Path(sys.executable).parent / "campaign"),
        "--workspace",
        str(ROOT),
        "build",
        args.slug,
        "--out",
        str(out / "site"),
    ]
    entry = cache.entry_path(config, campaign_folder(config, args.slug))

    def cold() -> tuple[float, float]:
        entry.unlink(missing_ok=True)
        return process_cpu_ms(command)

    cli = ensure_node_mjml()
    node_cli = [
        str(cli),
        str(source_file),
        "-o",
        str(out / "node.html"),
        "--config.validationLevel",
        "skip",
    ]
    process_cpu_ms(command)  # the cache entry the warm runs reuse
    timed = interleaved(
        process_runs,
        {
            "cold": cold,
            "warm": lambda: process_cpu_ms(command),
            "node": lambda: process_cpu_ms(node_cli),
        },
    )
    (wall, cpu), (warm_wall, warm_cpu), (cli_wall, cli_cpu) = (
        timed["cold"],
        timed["warm"],
        timed["node"],
    )
    node_times = json.loads(
        subprocess.run(
            ["node", str(BENCH / "mjml-node.js"), str(source_file), str(args.runs)],
            check=True,
            capture_output=True,
            text=True,
            cwd=BENCH,
        ).stdout
    )
    node_ms = statistics.median(node_times["wall"][1:])
    node_cpu = statistics.median(node_times["cpu"][1:])
    node_version = json.loads((BENCH / "node_modules" / "mjml" / "package.json").read_text())[
        "version"
    ]
    shutil.rmtree(out)

    print(
        f"campaign build {args.slug}: HTML {size / 1024:.1f} KB, MJML source {len(source) / 1024:.1f} KB,"
        f" medians of {args.runs} runs (processes: {process_runs})"
    )
    print(f"{'':34}{'campaign (Python)':>20}{'mjml ' + node_version + ' (node)':>22}{'ratio':>8}")
    print(
        f"{'MJML -> HTML, in-process, wall':34}{mjml_ms:>17.1f} ms{node_ms:>19.1f} ms{mjml_ms / node_ms:>8.2f}"
    )
    print(
        f"{'MJML -> HTML, in-process, CPU':34}{mjml_cpu:>17.1f} ms{node_cpu:>19.1f} ms{mjml_cpu / node_cpu:>8.2f}"
    )
    print(
        f"{'CSS inlining (premailer), wall/CPU':34}{premailer_ms:>17.1f} ms / {premailer_cpu:.1f} ms"
    )
    print(
        f"{'whole build, in-process, wall/CPU':34}{build_ms:>17.1f} ms / {build_cpu:.1f} ms   (first build: {first:.0f} ms)"
    )
    for label, (w, c) in (("cold", (wall, cpu)), ("unchanged", (warm_wall, warm_cpu))):
        print(
            f"{'as a process, ' + label + ', wall':34}{w:>17.0f} ms{cli_wall:>19.0f} ms{w / cli_wall:>8.2f}"
        )
        print(
            f"{'as a process, ' + label + ', CPU':34}{c:>17.0f} ms{cli_cpu:>19.0f} ms{c / cli_cpu:>8.2f}"
        )
    print(
        "(process: `campaign build` with its imports, writing the output, cold = cache entry"
        " deleted, unchanged = reused | the mjml CLI on the same MJML; load average"
        f" {os.getloadavg()[0]:.2f})"
    )
    emit("build", "whole build, in-process (CPU)", build_cpu, "ms", better="lower")
    emit(
        "build",
        "MJML -> HTML in-process, Python/node (CPU)",
        mjml_cpu / node_cpu,
        "ratio",
        better="lower",
    )
    emit("build", "`campaign build` as a process (CPU)", cpu, "ms", better="lower")
    emit(
        "build",
        "`campaign build` / node mjml CLI, as processes (CPU)",
        cpu / cli_cpu,
        "ratio",
        better="lower",
    )
    emit("build", "`campaign build` unchanged, as a process (CPU)", warm_cpu, "ms", better="lower")
    emit(
        "build",
        "`campaign build` unchanged / node mjml CLI, as processes (CPU)",
        warm_cpu / cli_cpu,
        "ratio",
        better="lower",
    )


if __name__ == "__main__":
    main()
