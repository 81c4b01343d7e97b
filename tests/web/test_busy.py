"""A 200,000-row import into SQLite while `campaign serve` takes 300 one-click unsubscribes
and bounce webhooks: every one is answered 2xx and every one is applied."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from campaign.audience import Store
from campaign.audience.tables import subscribers
from campaign.config import load_config
from campaign.db import connect
from campaign.links import Links
from tests.conftest import SECRET_KEY
from tests.web.conftest import BASE_URL
from tests.web.process import campaign_serve
from tests.web.test_webhooks import postmark, postmark_bounce

ROWS = 200_000
EACH = 150  # one-click unsubscribes, and as many bounce webhooks


def test_web_writes_during_a_long_import_are_all_answered_and_applied(workspace: Path) -> None:
    store = Store(connect(load_config(workspace).database_url))
    people = workspace / "people.csv"
    people.write_text(
        "email\n" + "".join(f"u{i}@example.org\nb{i}@example.org\n" for i in range(EACH))
    )
    from campaign.audience.importer import import_csv

    import_csv(store, people, "newsletter")
    links = Links(SECRET_KEY, BASE_URL)
    unsubscribers = {
        f"u{i}@example.org": links.token(
            "unsubscribe", store.find(f"u{i}@example.org").public_id, "c"
        )  # type: ignore[union-attr]
        for i in range(EACH)
    }
    big = workspace / "big.csv"
    with big.open("w") as out:
        out.write("email,first_name,city\n")
        out.writelines(f"n{i}@example.org,Name{i},Town {i % 97}\n" for i in range(ROWS))

    def count() -> int:
        with store.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(subscribers)).scalar_one()
            )

    with (
        campaign_serve(workspace) as served,
        httpx.Client(base_url=served.url, timeout=120) as http,
    ):
        during: list[bool] = []  # per answer: whether the import was still running

        def answered(response: httpx.Response) -> int:
            during.append(importing.poll() is None)
            return response.status_code

        def one_click(token: str) -> int:
            return answered(
                http.post(
                    f"/unsubscribe/{token}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            )

        def bounce(i: int) -> int:
            headers, body = postmark(postmark_bounce(f"b{i}@example.org", bounce_id=1000 + i))
            return answered(http.post("/webhooks/postmark", headers=headers, content=body))

        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        started = time.monotonic()
        importing = subprocess.Popen(
            [sys.executable, "-m", "campaign", "subscribers", "import", str(big), "--list", "big"],
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while count() <= 2 * EACH:  # wait until the import is writing
            assert importing.poll() is None, importing.stdout.read() if importing.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        posting = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one_click, unsubscribers.values()))
            codes += list(pool.map(bounce, range(EACH)))
        posted = time.monotonic()
        output = importing.communicate(timeout=600)[0].decode()
        imported = time.monotonic()
        assert importing.returncode == 0, output
        assert f"{ROWS} added" in " ".join(output.split())

        def applied() -> int:
            return sum(
                1
                for address in [*unsubscribers, *(f"b{i}@example.org" for i in range(EACH))]
                if (found := store.find(address)) is not None and found.status != "subscribed"
            )

        deadline = time.monotonic() + 30
        while applied() < 2 * EACH:
            assert time.monotonic() < deadline, f"{applied()} of {2 * EACH} applied"
            time.sleep(0.2)
        log = served.output()
    assert set(codes) == {200}, sorted(set(codes))
    assert sum(during) >= 30, f"only {sum(during)} answered while the import ran"
    assert "Traceback" not in log and "database is locked" not in log
    print(
        f"import {ROWS:,} rows: {imported - started:.1f} s; 300 posts answered in "
        f"{posted - posting:.1f} s, {sum(during)} of them during it; every one applied"
    )
