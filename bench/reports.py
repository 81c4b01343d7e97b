"""How long `campaign report` takes for a large send, and tracked redirects per second.

    .venv/bin/python bench/reports.py [--size 100000] [--clicks 2000] [--postgres URL]

Fills the ledger with one send of `--size` deliveries (all sent) and the events a week
after a send brings (60% delivered, 2% bounced, 0.2% complained, 0.5% unsubscribed),
then times `campaign.reports.report` (the query behind `campaign report`, `reports` and
the preview's Reports tab), and `--clicks` requests to `/r/<token>` on `campaign serve`
under uvicorn on loopback. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import httpx
from _postgres import postgres_schema
from _report import emit
from sqlalchemy import Engine, insert, update
from tests.servers import serve

from campaign.activity import campaign_events
from campaign.audience.tables import utcnow
from campaign.clicks import Click, Tracker, tracked_links
from campaign.compile import build
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.reports import report
from campaign.send import ledger
from campaign.send.ledger import deliveries
from campaign.web.app import create_app

SLUG = "2018-11-wsr-primer"


def fill(url: str, folder: Path, size: int) -> tuple[Config, Engine]:
    config = load_config(
        folder,
        environ={"CAMPAIGN_SECRET_KEY": "bench", "CAMPAIGN_DATABASE_URL": url},
    )
    engine = connect(config.database_url)
    compiled = build(config, SLUG).model_copy(update={"track_clicks": "aggregate"})
    send = ledger.open_send(engine, compiled, "newsletter", [])
    people = (
        SimpleNamespace(id=n, email=f"p{n}@example.org", public_id=f"id{n}", name="", fields={})
        for n in range(1, size + 1)
    )
    ledger.enqueue(engine, send, people, chunk=5000)
    with engine.begin() as connection:
        connection.execute(update(deliveries).values(status="sent"))
        ids = [row.send_id for row in connection.execute(deliveries.select())]
    start = utcnow()
    rows = []
    for n, send_id in enumerate(ids):
        for kind, every in (("delivered", 5 / 3), ("bounced", 50), ("complained", 500)):
            if n % every < 1:
                rows.append(
                    {
                        "send": send.id,
                        "send_id": send_id,
                        "kind": kind,
                        "hard": n % 2 == 0 if kind == "bounced" else None,
                        "at": start + timedelta(hours=n % 150),
                    }
                )
        if n % 200 == 0:
            rows.append(
                {
                    "send": send.id,
                    "send_id": send_id,
                    "kind": "unsubscribed",
                    "hard": None,
                    "at": start,
                }
            )
    with engine.begin() as connection:
        for begin in range(0, len(rows), 10000):
            connection.execute(insert(campaign_events), rows[begin : begin + 10000])
    return config, engine


async def clicks(base: str, paths: list[str], concurrency: int = 8) -> float:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base) as http:

        async def one(path: str) -> int:
            async with limit:
                return (await http.get(path)).status_code

        started = time.perf_counter()
        codes = await asyncio.gather(*(one(p) for p in paths))
        elapsed = time.perf_counter() - started
    assert all(code == 302 for code in codes), set(codes)
    return len(paths) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clicks", type=int, default=2000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    backend = "postgresql" if args.postgres else "sqlite"
    try:
        for name in ("campaign.toml", "campaigns", "layouts"):
            source = REPO / name
            if source.exists():
                (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
        with ExitStack() as stack:
            url = (
                stack.enter_context(postgres_schema(args.postgres))
                if args.postgres
                else f"sqlite:///{folder / 'bench.db'}"
            )
            config, engine = fill(url, folder, args.size)
            report(engine, SLUG)  # warm
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                found = report(engine, SLUG)
                runs.append(time.perf_counter() - started)
            assert found is not None and found.sent == args.size
            best = min(runs) * 1000
            print(
                f"report of a {args.size:,}-recipient send ({backend}): {best:.0f} ms "
                f"({found.delivered:,} delivered, {found.bounced:,} bounced)"
            )
            emit(
                "reports",
                f"report, {args.size:,} recipients, {backend}",
                best,
                "ms",
                better="lower",
            )

            tracker = Tracker.for_config(config)
            send = ledger.get_send(engine, SLUG)
            assert send is not None
            links = tracked_links(send.compiled.html, config.public_base_url)
            paths = [
                urlsplit(tracker.click_url(Click(SLUG, n % len(links), False))).path
                for n in range(args.clicks)
            ]
            with serve(create_app(config)) as base:
                rate = asyncio.run(clicks(base, paths))
            print(f"tracked redirects /r/ ({backend}): {rate:,.0f} req/s ({args.clicks} clicks)")
            emit("reports", f"tracked redirects, {backend}", rate, "req/s", better="higher")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
