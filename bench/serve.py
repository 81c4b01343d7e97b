"""Requests per second of `campaign serve` under uvicorn on loopback, on SQLite.

    .venv/bin/python bench/serve.py [--requests 2000] [--concurrency 8]

Measures four things a busy morning after a send looks like: the unsubscribe page
(GET), the RFC 8058 one-click POST (each for a different subscriber), a Postmark
bounce webhook (each a new event), and the archive copy. The client runs in the
same process as the server's thread pool, so figures are a floor. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

import httpx
from tests.servers import serve

from campaign.audience import Store
from campaign.compile import build
from campaign.config import load_config
from campaign.db import connect
from campaign.links import Links
from campaign.send.engine import send_campaign
from campaign.web.app import create_app

SLUG = "2018-11-wsr-primer"
AUTH = "bench:password"


async def timed(
    label: str, urls: list[tuple[str, str, bytes, dict[str, str]]], concurrency: int
) -> None:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as http:

        async def one(method: str, url: str, body: bytes, headers: dict[str, str]) -> int:
            async with limit:
                return (await http.request(method, url, content=body, headers=headers)).status_code

        start = time.perf_counter()
        codes = await asyncio.gather(*(one(*u) for u in urls))
        elapsed = time.perf_counter() - start
    bad = sum(1 for c in codes if c != 200)
    print(f"{label:<28} {len(urls) / elapsed:8.0f} req/s  ({len(urls)} requests, {bad} not 200)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    try:
        for name in ("campaign.toml", "campaigns", "layouts"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
        config = load_config(
            folder, environ={"CAMPAIGN_SECRET_KEY": "bench", "POSTMARK_WEBHOOK_AUTH": AUTH}
        )
        store = Store(connect(config.database_url))
        ids = [
            store.subscribe(f"p{i}@example.org", list_name="newsletter", source="bench").public_id
            for i in range(args.requests)
        ]
        asyncio.run(send_campaign(config, build(config, SLUG), list_name="newsletter"))
        links = Links(config.secret_key, config.public_base_url)
        auth = {"Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode()}
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        with serve(create_app(config)) as url:
            unsub = [f"{url}/unsubscribe/{links.token('unsubscribe', i, SLUG)}" for i in ids]
            asyncio.run(
                timed(
                    "GET /unsubscribe/<token>",
                    [("GET", u, b"", {}) for u in unsub],
                    args.concurrency,
                )
            )
            asyncio.run(
                timed(
                    "POST one-click",
                    [("POST", u, b"List-Unsubscribe=One-Click", form) for u in unsub],
                    args.concurrency,
                )
            )
            bounces = [
                (
                    "POST",
                    f"{url}/webhooks/postmark",
                    json.dumps(
                        {
                            "RecordType": "Bounce",
                            "ID": n,
                            "Type": "SoftBounce",
                            "Email": f"x{n}@example.net",
                            "MessageID": str(n),
                        }
                    ).encode(),
                    {**auth, "Content-Type": "application/json"},
                )
                for n in range(args.requests)
            ]
            asyncio.run(timed("POST /webhooks/postmark", bounces, args.concurrency))
            asyncio.run(
                timed(
                    "GET /archive/<slug>",
                    [("GET", f"{url}/archive/{SLUG}", b"", {})] * args.requests,
                    args.concurrency,
                )
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
