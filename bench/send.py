"""Send the example newsletter to N generated subscribers through the engine, and measure.

    .venv/bin/python bench/send.py [--size 100000] [--provider postmark|outbox|both] [--postgres URL]

Each run gets a fresh database (SQLite in a temporary folder, or a fresh schema of
--postgres URL), filled by bench/stream.py's generator, and runs in a child process
of its own so that its peak memory is its own. Postmark is the local server of the
tests, in another process. Prints the time spent queueing (until the first batch is
written), then, from the first batch on, messages per second and CPU seconds per 1,000
messages of the sender and of the server; peak RSS of the sending process and the
load average at the end (the machine may be shared). Reports them through
bench/_report.py. Figures only.

--profile also prints where the sender's CPU goes, per 1,000 messages, from thread CPU
clocks around each step of the engine (exclusive of the steps inside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from _report import emit  # noqa: E402


def _serve_postmark(ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from tests.servers import serve
    from tests.servers.postmark import PostmarkServer

    server = PostmarkServer()
    server.accepted = _Count()  # type: ignore[assignment]  (a million records would only measure the server)
    with serve(server.app) as url:
        ready.put(url)
        while True:
            time.sleep(3600)


class _Count(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


def _workspace(root: Path, database: str, provider: str, url: str, concurrency: int) -> None:
    for folder in ("campaigns", "layouts"):
        shutil.copytree(REPO / folder, root / folder)
    extra = (
        f'base_url = "{url}"\n' if provider == "postmark" else f'directory = "{root / "outbox"}"\n'
    )
    (root / "campaign.toml").write_text(
        f'public_base_url = "https://news.example.org"\n[database]\nurl = "{database}"\n'
        f'[provider]\nname = "{provider}"\n{extra}[send]\nconcurrency = {concurrency}\n'
    )


class _Clocks:
    """Thread CPU spent in each wrapped step, less the wrapped steps it called."""

    def __init__(self) -> None:
        self.spent: defaultdict[str, float] = defaultdict(float)
        self.local = threading.local()

    def wrap(self, owner: Any, attribute: str, step: str) -> None:
        inner = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self.local.__dict__.setdefault("stack", [0.0])
            stack.append(0.0)
            began = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.thread_time() - began
                self.spent[step] += spent - stack.pop()
                stack[-1] += spent

        setattr(owner, attribute, timed)


STEPS: list[tuple[str, str, str]] = [
    ("campaign.send.ledger", "enqueue", "queueing"),
    ("campaign.send.ledger", "claim", "claiming (transaction, rows)"),
    ("campaign.audience.store:Store", "mailable_ids", "re-checking mailability"),
    ("campaign.send.ledger", "record", "recording outcomes"),
    ("campaign.send.ledger", "release", "recording outcomes"),
    ("campaign.send.ledger", "settle", "recording outcomes"),
    ("campaign.send.claims", "_settle", "recording outcomes"),
    ("campaign.personalise:Personaliser", "message", "personalising"),
    ("campaign.send.engine", "prepare_messages", "fitting to the provider"),
    ("campaign.providers.postmark:PostmarkProvider", "build_request", "JSON bodies"),
]
"""(module[:class], function, step): what --profile times; a name the code lacks is left out."""


def _profile() -> _Clocks:
    import importlib

    clocks = _Clocks()
    for where, attribute, step in STEPS:
        module, _, cls = where.partition(":")
        owner: Any = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        if attribute in vars(owner):
            clocks.wrap(owner, attribute, step)
    return clocks


def run_one(root: Path, size: int, profile: bool) -> dict[str, Any]:
    """In the child: fill, build, send; report figures as JSON."""
    from stream import fill

    from campaign.compile import build
    from campaign.config import load_config
    from campaign.send import Progress, send_campaign

    config = load_config(
        root,
        environ={
            "CAMPAIGN_SECRET_KEY": "bench-key",
            "POSTMARK_SERVER_TOKEN": "postmark-test-token",
        },
    )
    fill(config.database_url, size)
    compiled = build(config, "2018-11-wsr-primer")
    clocks = _profile() if profile else None
    first: dict[str, float] = {}

    def mark(progress: Progress) -> None:
        """The first batch written: queueing is over, the rate counts from here."""
        if progress.done and not first:
            first.update(at=time.perf_counter(), cpu=_cpu(), done=progress.done)

    cpu, main_cpu = _cpu(), time.thread_time()
    started = time.perf_counter()
    summary = asyncio.run(send_campaign(config, compiled, list_name="bench", progress=mark))
    ended, used, main_used = time.perf_counter(), _cpu() - cpu, time.thread_time() - main_cpu
    sent = summary.sent - first["done"]
    figures: dict[str, Any] = {
        "sent": summary.sent,
        "skipped": summary.skipped,
        "queueing_seconds": first["at"] - started,
        "queueing_cpu": first["cpu"] - cpu,
        "seconds": ended - first["at"],
        "per_second": sent / (ended - first["at"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_per_1000": (_cpu() - first["cpu"]) / max(sent, 1) * 1000,
        "html_kb": len(compiled.html.encode()) / 1024,
    }
    if clocks is not None:
        per = 1000 / max(summary.sent, 1)
        steps = {step: spent * per for step, spent in clocks.spent.items()}
        on_loop = ("personalising", "fitting to the provider", "JSON bodies")
        steps["HTTP and the event loop"] = main_used * per - sum(steps.get(s, 0) for s in on_loop)
        steps["other"] = used * per - sum(steps.values())
        figures["profile_ms"] = {step: ms * 1000 for step, ms in steps.items()}
    return figures


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--provider", choices=["postmark", "outbox", "both"], default="both")
    parser.add_argument(
        "--postgres", metavar="URL", help="use a fresh schema of this PostgreSQL database"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="where the sender's CPU goes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(Path(args.child), args.size, args.profile)))
        return
    ready: multiprocessing.Queue[str] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve_postmark, args=(ready,), daemon=True)
    server.start()
    url = ready.get(timeout=30)
    providers = ["postmark", "outbox"] if args.provider == "both" else [args.provider]
    try:
        for provider in providers:
            with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
                root = Path(tmp)
                database, schema = f"sqlite:///{root / 'bench.db'}", None
                if args.postgres:
                    schema = f"bench_{uuid.uuid4().hex[:8]}"
                    _schema(args.postgres, f'CREATE SCHEMA "{schema}"')
                    database = f"{args.postgres}?options=-csearch_path%3D{schema}"
                _workspace(root, database, provider, url, args.concurrency)
                command = [sys.executable, __file__, "--child", str(root), "--size", str(args.size)]
                # The server is idle but for this send: its CPU over the child's life is the send's.
                served = _process_cpu(server.pid or 0)
                try:
                    child = subprocess.run(
                        command + ["--profile"] * args.profile,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                finally:
                    if schema:
                        _schema(args.postgres, f'DROP SCHEMA "{schema}" CASCADE')
                served = _process_cpu(server.pid or 0) - served
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                _print(provider, args, figures, served)
    finally:
        server.terminate()


def _print(provider: str, args: argparse.Namespace, figures: dict[str, Any], served: float) -> None:
    backend = "postgresql" if args.postgres else "sqlite"
    server_per_1000 = served / max(figures["sent"], 1) * 1000 if provider == "postmark" else 0.0
    print(
        f"{provider:8} {backend:10} {figures['sent']:>9,.0f} sent ({figures['html_kb']:.0f} KB HTML each); "
        f"queueing {figures['queueing_seconds']:.1f} s ({figures['queueing_cpu']:.1f} s CPU), "
        f"then {figures['seconds']:6.1f} s = {figures['per_second']:7,.0f} msg/s; "
        f"peak RSS {figures['peak_rss_mb']:5.0f} MB; CPU per 1,000: sender {figures['cpu_per_1000']:.3f} s"
        + (f", server {server_per_1000:.3f} s" if provider == "postmark" else "")
        + f"; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    for step, ms in sorted(figures.get("profile_ms", {}).items(), key=lambda item: -item[1]):
        print(f"    {step:32} {ms:6.1f} ms per 1,000")
    run = f"{args.size:,} to {provider}, {backend}"
    emit("send", f"{run}: rate", figures["per_second"], "messages/s", better="higher")
    emit("send", f"{run}: peak RSS", figures["peak_rss_mb"], "MB", better="lower")
    emit("send", f"{run}: CPU per 1,000", figures["cpu_per_1000"], "s", better="lower")
    emit("send", f"{run}: queueing", figures["queueing_seconds"], "s", better="lower")
    if provider == "postmark":
        emit("send", f"{run}: server CPU per 1,000", server_per_1000, "s", better="lower")


def _schema(url: str, statement: str) -> None:
    import sqlalchemy

    from campaign.db import normalise_url

    engine = sqlalchemy.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


if __name__ == "__main__":
    main()
