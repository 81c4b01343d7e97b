"""Send the example newsletter to N generated subscribers through the engine, and measure.

    .venv/bin/python bench/send.py [--size 100000] [--provider postmark|outbox|both] [--postgres URL]

Each run gets a fresh database (SQLite in a temporary folder, or a fresh schema of
--postgres URL), filled by bench/stream.py's generator, and runs in a child process
of its own so that its peak memory is its own. Postmark is the local server of the
tests, in another process (its CPU is not counted). Prints messages per second,
peak RSS of the sending process, CPU seconds per 1,000 messages and the load average
at the end (the machine may be shared), and reports them through bench/_report.py.
Figures only.
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
import time
import uuid
from pathlib import Path

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


def run_one(root: Path, size: int) -> dict[str, float]:
    """In the child: fill, build, send; report figures as JSON."""
    from stream import fill

    from campaign.compile import build
    from campaign.config import load_config
    from campaign.send import send_campaign

    config = load_config(
        root,
        environ={
            "CAMPAIGN_SECRET_KEY": "bench-key",
            "POSTMARK_SERVER_TOKEN": "postmark-test-token",
        },
    )
    fill(config.database_url, size)
    compiled = build(config, "2018-11-wsr-primer")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    summary = asyncio.run(send_campaign(config, compiled, list_name="bench"))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {
        "sent": summary.sent,
        "skipped": summary.skipped,
        "seconds": elapsed,
        "per_second": summary.sent / elapsed,
        "peak_rss_mb": after.ru_maxrss / 1024,
        "cpu_per_1000": used / max(summary.sent, 1) * 1000,
        "html_kb": len(compiled.html.encode()) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--provider", choices=["postmark", "outbox", "both"], default="both")
    parser.add_argument(
        "--postgres", metavar="URL", help="use a fresh schema of this PostgreSQL database"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(Path(args.child), args.size)))
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
                try:
                    child = subprocess.run(
                        [sys.executable, __file__, "--child", str(root), "--size", str(args.size)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                finally:
                    if schema:
                        _schema(args.postgres, f'DROP SCHEMA "{schema}" CASCADE')
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                backend = "postgresql" if args.postgres else "sqlite"
                print(
                    f"{provider:8} {backend:10} {figures['sent']:>9,.0f} sent ({figures['html_kb']:.0f} KB HTML each) "
                    f"in {figures['seconds']:6.1f} s = {figures['per_second']:7,.0f} msg/s; "
                    f"peak RSS {figures['peak_rss_mb']:5.0f} MB; CPU {figures['cpu_per_1000']:.2f} s per 1,000; "
                    f"load average {os.getloadavg()[0]:.1f}"
                )
                run = f"{args.size:,} to {provider}, {backend}"
                emit("send", f"{run}: rate", figures["per_second"], "messages/s", better="higher")
                emit("send", f"{run}: peak RSS", figures["peak_rss_mb"], "MB", better="lower")
                emit("send", f"{run}: CPU per 1,000", figures["cpu_per_1000"], "s", better="lower")
    finally:
        server.terminate()


def _schema(url: str, statement: str) -> None:
    import sqlalchemy

    from campaign.db import normalise_url

    engine = sqlalchemy.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


if __name__ == "__main__":
    main()
