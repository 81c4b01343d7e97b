"""Two `campaign send` processes on one campaign share `[send] rate_limit`: the local
Postmark never takes more than `rate` messages in any one second (arrivals timed there)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.db import connect
from campaign.send.ledger import deliveries
from tests.conftest import real_sender
from tests.servers import serve
from tests.servers.postmark import TOKEN, PostmarkServer

RATE = 100
RECIPIENTS = 450


def _workspace(root: Path, url: str, db_url: str) -> None:
    (root / "campaigns" / "mini").mkdir(parents=True)
    (root / "campaigns" / "mini" / "campaign.yaml").write_text(
        "subject: Mini\npreheader: A short one.\nlayout: newsletter\ndate: 2026-11-25\n"
        "sections:\n  - kind: spotlight\n    title: Hello\n    body_file: body.md\n"
    )
    (root / "campaigns" / "mini" / "body.md").write_text("Hello {{ first_name }}.\n")
    toml = (root / "campaign.toml").read_text()
    toml = toml.replace('name = "outbox"', f'name = "postmark"\nbase_url = "{url}"')
    toml = toml.replace("rate_limit = 0", f"rate_limit = {RATE}")
    toml = toml.replace('url = "sqlite:///campaign.db"', f'url = "{db_url}"')
    (root / "campaign.toml").write_text(toml)
    real_sender(root)
    with (root / "people.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name"])
        writer.writerows([f"user{i}@example.com", f"User{i}"] for i in range(RECIPIENTS))


def _campaign(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "campaign", *args],
        cwd=root,
        env={**os.environ, "POSTMARK_SERVER_TOKEN": TOKEN, "CAMPAIGN_WORKSPACE": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window [t, t + 1 s)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_busiest_second_counts_a_sliding_window() -> None:
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.6]) == 3
    assert busiest_second([0.0, 1.0, 2.0]) == 1


@pytest.mark.slow
def test_two_processes_together_stay_under_the_rate_limit(workspace: Path, db_url: str) -> None:
    server = PostmarkServer()
    with serve(server.app) as url:
        _workspace(workspace, url, db_url)
        imported = _campaign(workspace, "subscribers", "import", "people.csv", "--list", "big")
        assert imported.wait(timeout=120) == 0, imported.stdout and imported.stdout.read()
        senders = [_campaign(workspace, "send", "mini", "--list", "big", "--yes") for _ in "ab"]
        outputs = [p.communicate(timeout=120)[0] for p in senders]
        # The one that ends first may see the other's last batch still in flight (exit 1).
        assert {p.returncode for p in senders} <= {0, 1}, outputs

    assert max(server.deliveries().values()) == 1 and len(server.deliveries()) == RECIPIENTS
    with connect(db_url).connect() as c:
        statuses = c.execute(select(deliveries.c.status, deliveries.c.claimed_by)).all()
    assert {status for status, _ in statuses} == {"sent"}, outputs
    assert len({worker for _, worker in statuses}) == 2, "both processes should have sent some"
    assert busiest_second([a.at for a in server.accepted]) <= RATE
