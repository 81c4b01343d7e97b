"""A sender killed as PID 1 of its own PID namespace (a container's entrypoint), mid-request:
the next run, on the same host name and seeing its own PID 1 nowhere, resumes the send once
the dead sender's lease ran out. Of the deliveries it left unknown, those confirmed by
delivery webhooks are never resent, and Postmark is asked about the rest before any resend:
everyone gets the newsletter exactly once, or is reported."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from campaign.config import load_config
from campaign.db import connect
from campaign.send import ledger
from campaign.send.ledger import deliveries
from campaign.web.app import create_app
from tests.conftest import real_sender, run_cli, unavailable
from tests.send.conftest import wait_for_leases_to_run_out
from tests.servers import serve
from tests.servers.postmark import TOKEN, PostmarkServer, Reply

SLUG = "2018-11-wsr-primer"
RECIPIENTS, BATCH = 60, 10
LEASE = 3.0
HOOK = "postmark:hook-password"


def _workspace(root: Path, url: str) -> None:
    toml = root / "campaign.toml"
    text = toml.read_text().replace('name = "outbox"', f'name = "postmark"\nbase_url = "{url}"')
    text = text.replace(
        "[send]\n",
        f"[send]\nbatch_size = {BATCH}\nlease_seconds = {LEASE}\nbackoff_seconds = 0.05\n",
    )
    toml.write_text(text.replace("concurrency = 4", "concurrency = 1"))
    real_sender(root)
    with (root / ".env").open("a") as env:
        env.write(f"POSTMARK_WEBHOOK_AUTH={HOOK}\n")
    (root / "big.csv").write_text(
        "email\n" + "".join(f"user{i}@example.com\n" for i in range(RECIPIENTS))
    )


def _send(root: Path, *args: str, pid_namespace: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "campaign", "send", SLUG, "--list", "big", "--yes", *args]
    if pid_namespace:
        command = ["unshare", "--pid", "--fork", "--mount-proc", *command]
    return subprocess.Popen(
        command,
        cwd=root,
        env={**os.environ, "POSTMARK_SERVER_TOKEN": TOKEN, "CAMPAIGN_WORKSPACE": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _rows(root: Path) -> dict[str, tuple[str, str | None]]:
    """send id -> (status, claimed_by)."""
    with connect(load_config(root).database_url).connect() as c:
        rows = c.execute(select(deliveries.c.send_id, deliveries.c.status, deliveries.c.claimed_by))
        return {send_id: (status, worker) for send_id, status, worker in rows}


def _poll(what: str, done: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def _deliver(root: Path, send_ids: list[str]) -> None:
    """Postmark's Delivery webhooks for `send_ids`, through the web app."""
    app = create_app(load_config(root))
    auth = "Basic " + base64.b64encode(HOOK.encode()).decode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        for n, send_id in enumerate(send_ids):
            record = {
                "RecordType": "Delivery",
                "MessageID": f"pm-{n}",
                "Recipient": f"r{n}@example.com",
                "Metadata": {"send_id": send_id},
                "DeliveredAt": "2026-01-01T00:00:00Z",
            }
            reply = await http.post(
                "/webhooks/postmark",
                content=json.dumps(record),
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            assert reply.json() == {"recorded": 1, "replayed": 0}


@pytest.mark.slow
def test_pid1_sender_killed_mid_request_resumes_after_its_lease(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("a PID namespace needs root and unshare(1) (util-linux)")

    server = PostmarkServer()
    with serve(server.app) as url:
        _workspace(workspace, url)
        assert run_cli(capsys, "subscribers", "import", "big.csv", "--list", "big")[0] == 0
        server.then(Reply(), Reply(), Reply(hang=120))  # the third batch is taken, no reply
        killed = _send(workspace, pid_namespace=True)
        _poll(
            "the third batch in flight",
            lambda: (
                [s for s, _ in _rows(workspace).values()].count("sending") == BATCH
                and len(server.accepted) == 3 * BATCH
            ),
        )
        in_flight = {k for k, (s, _) in _rows(workspace).items() if s == "sending"}
        workers = {w for k, (_, w) in _rows(workspace).items() if k in in_flight}
        assert len(workers) == 1 and workers.pop().split(":")[1] == "1"  # PID 1 in its namespace
        child = Path(f"/proc/{killed.pid}/task/{killed.pid}/children").read_text().split()
        os.kill(int(child[0]), signal.SIGKILL)  # the namespace's PID 1: everything in it dies
        killed.wait(timeout=30)

        engine = connect(load_config(workspace).database_url)
        send = ledger.get_send(engine, SLUG)
        assert send is not None
        assert ledger.prepare(engine, send.id) == 0  # its lease still runs: it might be alive

        wait_for_leases_to_run_out(load_config(workspace).database_url, LEASE * 3)
        resumed = _send(workspace)
        out, _ = resumed.communicate(timeout=120)
        assert resumed.returncode == 1, out  # finished, but some deliveries are unknown
        assert f"{BATCH} deliveries were in flight" in out
        statuses = {k: s for k, (s, _) in _rows(workspace).items()}
        assert {k for k, s in statuses.items() if s == "unknown"} == in_flight
        assert list(statuses.values()).count("sent") == RECIPIENTS - BATCH

        confirmed = sorted(in_flight)[:6]
        asyncio.run(_deliver(workspace, confirmed))
        code, out, _ = run_cli(capsys, "status", SLUG)
        assert (
            code == 2 and "unknown resolved as sent: 6 by delivered webhook" in out
        )  # 4 still wait

        final = _send(workspace, "--resend-unknown")
        out, _ = final.communicate(timeout=120)
        assert final.returncode == 0, out
        assert "4 unknown deliveries are in postmark's log: sent, not resent" in out
        assert server.searches == 4  # the webhook-confirmed ones were not even asked about

    statuses = {k: s for k, (s, _) in _rows(workspace).items()}
    assert set(statuses.values()) == {"sent"}
    counts = server.deliveries()
    assert len(counts) == RECIPIENTS and set(counts.values()) == {1}
