"""SIGKILL `campaign send` at several points of a 20,000-recipient send to the local Postmark,
run it again: every recipient gets the newsletter exactly once, except those the ledger
reports unknown (the batches in flight at each kill), which get it at most once."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.config import load_config
from campaign.db import connect
from campaign.send.ledger import deliveries
from tests.conftest import real_sender
from tests.send.conftest import wait_for_leases_to_run_out
from tests.servers import serve
from tests.servers.postmark import TOKEN, PostmarkServer

RECIPIENTS = 20_000
BATCH, CONCURRENCY = 100, 4
LEASE = 1.0
"""Seconds a killed run's claims stay its own: the next run starts once they ran out."""
KILL_AT = (1, 6_000, 12_000, 17_000)
"""Deliveries the server has taken when each run is killed (1: as soon as sending starts)."""


def _workspace(root: Path, url: str) -> None:
    (root / "campaigns" / "mini").mkdir(parents=True)
    (root / "campaigns" / "mini" / "campaign.yaml").write_text(
        "subject: Mini\npreheader: A short one.\nlayout: newsletter\ndate: 2026-11-25\n"
        "sections:\n  - kind: spotlight\n    title: Hello\n    body_file: body.md\n"
    )
    (root / "campaigns" / "mini" / "body.md").write_text("Hello {{ first_name }}, a short note.\n")
    toml = (
        (root / "campaign.toml")
        .read_text()
        .replace('name = "outbox"', f'name = "postmark"\nbase_url = "{url}"')
    )
    toml = toml.replace(
        "[send]\n",
        f"[send]\nbatch_size = {BATCH}\nbackoff_seconds = 0.05\nlease_seconds = {LEASE}\n",
    )
    toml = toml.replace("concurrency = 4", f"concurrency = {CONCURRENCY}")
    (root / "campaign.toml").write_text(toml)
    real_sender(root)
    with (root / "big.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name"])
        writer.writerows([f"user{i}@example.com", f"User{i}"] for i in range(RECIPIENTS))


def _start(root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "POSTMARK_SERVER_TOKEN": TOKEN, "CAMPAIGN_WORKSPACE": str(root)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "campaign", "send", "mini", "--list", "big", "--yes"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _claimed(root: Path) -> int:
    with connect(load_config(root).database_url).connect() as c:
        return len(
            c.execute(select(deliveries.c.send_id).where(deliveries.c.status == "sending")).all()
        )


@pytest.mark.slow
def test_sigkill_and_resume_sends_each_recipient_once(workspace: Path) -> None:
    server = PostmarkServer()
    log = workspace / "send.log"
    with serve(server.app) as url:
        _workspace(workspace, url)
        imported = subprocess.run(
            [sys.executable, "-m", "campaign", "subscribers", "import", "big.csv", "--list", "big"],
            cwd=workspace,
            capture_output=True,
            text=True,
            env={**os.environ, "CAMPAIGN_WORKSPACE": str(workspace)},
        )
        assert imported.returncode == 0, imported.stderr
        for threshold in KILL_AT:
            process = _start(workspace, log)
            deadline = time.monotonic() + 60
            while len(server.accepted) < threshold:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the send made no progress"
                time.sleep(0.005)
            process.kill()  # SIGKILL: no cleanup of any kind
            process.wait()
            # What the kill left claimed (the next run calls it unknown): the batches in flight.
            assert _claimed(workspace) <= CONCURRENCY * BATCH
            wait_for_leases_to_run_out(load_config(workspace).database_url, LEASE * 5)
        final = _start(workspace, log)
        assert final.wait(timeout=120) in (0, 1), log.read_text()

    with connect(load_config(workspace).database_url).connect() as c:
        rows = c.execute(select(deliveries.c.email, deliveries.c.status)).all()
    status = dict(rows)
    assert len(status) == RECIPIENTS
    unknown = {email for email, s in status.items() if s == "unknown"}
    assert set(status.values()) <= {"sent", "unknown"}
    counts = server.deliveries()
    assert max(counts.values()) == 1, "someone got the newsletter twice"
    missing = set(status) - set(counts)
    assert missing <= unknown, "someone the ledger calls sent never got it"
    assert {e for e, s in status.items() if s == "sent"} <= set(counts)
    assert len(unknown) <= len(KILL_AT) * BATCH * CONCURRENCY
    if unknown:
        assert final.returncode == 1 and "unknown" in log.read_text()
