"""Throttling never fails anyone, and a refusal of every message pauses the send: the
engine against the local Postmark, 5,000 recipients on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.send import send_campaign
from tests.send.conftest import compiled, make_config, populate
from tests.servers import serve
from tests.servers.postmark import PostmarkServer, Reply

TOTAL = 5000


@pytest.fixture
def postmark() -> Iterator[tuple[PostmarkServer, str]]:
    server = PostmarkServer()
    with serve(server.app) as url:
        yield server, url


def _config(tmp_path: Path, url: str, **send: object) -> tuple[str, object]:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, TOTAL)
    knobs = {"backoff_seconds": 0.02, "backoff_max_seconds": 0.1, "batch_size": 100, **send}
    lines = "".join(f"{k} = {v}\n" for k, v in knobs.items())
    config = make_config(
        tmp_path / "ws", db_url, provider="postmark", toml=f'base_url = "{url}"\n[send]\n{lines}'
    )
    return db_url, config


def test_thirty_429s_in_a_5000_send_fail_no_one(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    # Two attempts only: before throttling stopped using them up, the rows that met two
    # 429s failed.
    _, config = _config(tmp_path, url, max_attempts=2, concurrency=4)
    server.then(*[Reply(429, headers={"Retry-After": "0"}) for _ in range(15)])
    server.then(*[Reply(429, headers={"Retry-After": "1"}) for _ in range(2)])
    server.then(*[Reply(429, headers={"Retry-After": "0"}) for _ in range(13)])
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))  # type: ignore[arg-type]
    assert not server.script, "every scripted 429 was answered"
    assert summary.ok and summary.sent == TOTAL and summary.failed == 0
    counts = server.deliveries()
    assert len(counts) == TOTAL and set(counts.values()) == {1}


def test_5000_permanent_refusals_pause_after_max_consecutive_failures(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    _, config = _config(tmp_path, url, max_consecutive_failures=5, concurrency=2)
    server.inactive = {f"user{i}@example.com" for i in range(TOTAL)}  # ErrorCode 406 for each
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))  # type: ignore[arg-type]
    assert summary.status == "paused" and "5 provider calls in a row" in summary.note
    assert "406" in summary.note
    # Paused after 5 calls (and the one other worker's call in flight), not after the list.
    assert summary.failed <= (5 + 2) * 100
    assert summary.pending == TOTAL - summary.failed
