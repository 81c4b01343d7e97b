"""The engine against the local Postmark: retries, Retry-After, the rate limit, pausing,
stopping on a refused request, unknown outcomes, two engines on one send."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from campaign.db import connect, normalise_url
from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers import Result, create
from campaign.send import Progress, ledger, send_campaign, send_test
from campaign.send.ledger import deliveries
from tests.send.conftest import compiled, make_config, populate
from tests.servers import serve
from tests.servers.postmark import PostmarkServer, Reply


@pytest.fixture
def postmark() -> Iterator[tuple[PostmarkServer, str]]:
    server = PostmarkServer()
    with serve(server.app) as url:
        yield server, url


def settings(url: str, **send: object) -> str:
    knobs = {"backoff_seconds": 0.02, "backoff_max_seconds": 0.1, **send}
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in knobs.items())
    return f'base_url = "{url}"\n[send]\n{lines}'


def test_429_then_500s_then_success_everyone_once_rate_respected(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 300)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=settings(url, rate_limit=400, batch_size=50),
    )
    server.then(Reply(429, headers={"Retry-After": "0.5"}), Reply(500), Reply(500), Reply(503))
    started = time.monotonic()
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.ok and summary.sent == 300
    counts = server.deliveries()
    assert len(counts) == 300 and set(counts.values()) == {1}
    # Retry-After held every worker: nothing was accepted in the half second after the 429.
    assert min(a.at for a in server.accepted) - started >= 0.5
    # The rate: 400/s in batches of 50, so 300 messages span at least (300 - 50) / 400 s,
    # less the jitter between a batch's turn and its arrival at the server on a loaded
    # machine (claim, HTTP); without the limit they all arrive within a few milliseconds.
    times = sorted(a.at for a in server.accepted)
    assert times[-1] - times[0] >= (300 - 50) / 400 - 0.1
    for second in range(int(times[-1] - times[0]) + 1):
        window = [t for t in times if times[0] + second <= t < times[0] + second + 1]
        assert len(window) <= 400 + 50


def test_rows_wait_for_the_rate_limit_unclaimed(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    """A batch is claimed (`sending`) only once the rate limit lets it go: a kill while the
    workers wait for their turn leaves nothing unknown."""
    _, url = postmark
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 400)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=settings(url, rate_limit=400, batch_size=50, concurrency=4),
    )
    ledger_db = connect(db_url)
    provider = create(config)
    leave = provider.send
    claimed_when_leaving: list[int] = []

    async def send(batch: Sequence[Message]) -> list[Result]:
        with ledger_db.connect() as c:
            claimed_when_leaving.append(
                len(
                    c.execute(
                        select(deliveries.c.send_id).where(deliveries.c.status == "sending")
                    ).all()
                )
            )
        return await leave(batch)

    provider.send = send  # type: ignore[method-assign]
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", provider=provider))
    assert summary.ok and summary.sent == 400 and len(claimed_when_leaving) == 8
    # One batch leaves every 1/8 s and the local server answers in far less: the one leaving is
    # the only one claimed (claiming before the wait held all four workers' batches: 200).
    assert max(claimed_when_leaving) <= 2 * 50


def test_pause_after_failures_in_a_row_then_resume(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 40)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=settings(url, batch_size=10, concurrency=1, max_consecutive_failures=3),
    )
    server.then(*[Reply(500)] * 3)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.status == "paused" and summary.stopped == "paused"
    assert (
        "paused after 3 provider calls in a row that delivered nothing" in summary.note
        and "500" in summary.note
    )
    assert not server.accepted and not summary.ok
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert (
        summary.ok and set(server.deliveries().values()) == {1} and len(server.deliveries()) == 40
    )


def test_refused_request_stops_at_once_and_resumes(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 30)
    toml = settings(url, batch_size=10, concurrency=1)
    config = make_config(tmp_path / "ws", db_url, provider="postmark", toml=toml)
    server.then(
        Reply(), Reply(422, body={"ErrorCode": 400, "Message": "Sender signature not found."})
    )
    with pytest.raises(ProviderError, match="Sender signature not found"):
        asyncio.run(send_campaign(config, compiled(), list_name="news"))
    summary = ledger.summary(connect(db_url), "c1")
    assert (
        summary is not None
        and summary.status == "failed"
        and summary.sent == 10
        and summary.pending == 20
    )
    bad = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=toml,
        POSTMARK_SERVER_TOKEN="wrong-token-123",
    )
    with pytest.raises(ProviderError) as info:
        asyncio.run(send_campaign(bad, compiled(), list_name="news"))
    assert "401" in str(info.value) and "wrong-token-123" not in str(info.value)
    assert asyncio.run(send_campaign(config, compiled(), list_name="news")).ok
    assert len(server.deliveries()) == 30 and set(server.deliveries().values()) == {1}


def test_unknown_outcomes_are_not_resent_unless_asked(
    postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 20)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=settings(url, batch_size=10, concurrency=1),
    )
    server.then(Reply(drop=True))
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert (
        summary.unknown == 10
        and summary.sent == 10
        and not summary.ok
        and summary.status == "finished"
    )
    assert asyncio.run(send_campaign(config, compiled(), list_name="news")).unknown == 10
    assert len(server.accepted) == 20  # the dropped batch did arrive; nothing was sent twice
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", resend_unknown=True))
    assert summary.ok and len(server.accepted) == 30  # asked for: the 10 unknown go again


def test_resumed_send_keeps_its_frozen_content(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 3)
    config = make_config(tmp_path / "ws", db_url)
    asyncio.run(send_campaign(config, compiled(), list_name="news"))
    changed = compiled(html="<p>new</p>", source_hash="other")
    summary = asyncio.run(send_campaign(config, changed, list_name="news"))
    assert summary.content_changed and summary.sent == 3
    assert ledger.get_send(connect(db_url), "c1").compiled.html == compiled().html  # type: ignore[union-attr]


def test_progress_shows_queueing_and_counts_the_rate_from_the_first_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 25)
    config = make_config(tmp_path / "ws", db_url, toml="[send]\nbatch_size = 10\nconcurrency = 1\n")
    claims: list[int] = []
    claim = ledger.claim

    def counted(*args: object, **kwargs: object) -> object:
        claims.append(len(kwargs["outcomes"]))  # type: ignore[arg-type]
        return claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "claim", counted)
    monkeypatch.setattr(ledger, "settle", lambda *args: pytest.fail("a batch written on its own"))
    seen: list[Progress] = []
    summary = asyncio.run(
        send_campaign(
            config, compiled(), list_name="news", progress=lambda p: seen.append(replace(p))
        )
    )
    assert summary.sent == 25
    queueing = [p for p in seen if p.queueing]
    assert queueing and queueing[-1].queued == 25 and not any(p.done for p in queueing)
    sending = [p for p in seen if not p.queueing]
    assert [p.done for p in sending] == [10, 20, 25]
    # The clock starts at the first claim, after queueing: every rate is of sending alone.
    assert all(p.started == sending[0].started > 0 for p in sending)
    assert Progress(total=4, sent=4, started=10.0).rate(12.0) == 2.0
    # Each batch's outcome went with the next claim: 3 batches, 4 claims, no lone writes.
    assert claims == [0, 10, 10, 5]


def test_test_send_touches_no_ledger(postmark: tuple[PostmarkServer, str], tmp_path: Path) -> None:
    server, url = postmark
    server.keep_payloads = True
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = make_config(tmp_path / "ws", db_url, provider="postmark", toml=settings(url))
    results = asyncio.run(send_test(config, compiled(), ["me@example.org", "you@example.org"]))
    assert [r.status.value for r in results] == ["accepted", "accepted"]
    assert [m["Subject"] for m in server.payloads[0]] == ["[TEST] News for you"] * 2
    assert ledger.get_send(connect(db_url), "c1") is None


def test_no_secret_key_no_send(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = make_config(tmp_path / "ws", db_url, CAMPAIGN_SECRET_KEY="")
    with pytest.raises(ConfigError, match="CAMPAIGN_SECRET_KEY"):
        asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert ledger.get_send(connect(db_url), "c1") is None


def test_two_engines_on_one_send_never_overlap(
    db_url: str, postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    """Two engines (threads, each with its own database engine, as two hosts would be) share one
    send. The shared rate limit spreads it over 4 s or more, so on a loaded machine the second
    host still starts long before the first could have sent everything alone."""
    server, url = postmark
    populate(db_url, tmp_path, 2000)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="postmark",
        toml=settings(url, batch_size=50, concurrency=2, rate_limit=500),
    )
    summaries = []

    def run(worker: str) -> None:
        own = create_engine(normalise_url(db_url))
        summaries.append(
            asyncio.run(
                send_campaign(config, compiled(), list_name="news", engine=own, worker_id=worker)
            )
        )
        own.dispose()

    threads = [threading.Thread(target=run, args=(f"host{n}:{n}:w",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = server.deliveries()
    assert len(counts) == 2000 and set(counts.values()) == {1}
    with connect(db_url).connect() as c:
        by_worker = dict(
            c.execute(
                select(deliveries.c.claimed_by, ledger.func.count()).group_by(
                    deliveries.c.claimed_by
                )
            ).all()
        )
    assert set(by_worker) == {"host1:1:w", "host2:2:w"}  # both did a share of the work
    assert ledger.summary(connect(db_url), "c1").status == "finished"  # type: ignore[union-attr]


def test_a_message_that_cannot_be_made_fails_that_recipient_alone(tmp_path: Path) -> None:
    """An exception while preparing one message is that recipient's failure, naming them."""
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    populate(db_url, tmp_path, 20)
    config = make_config(tmp_path / "ws", db_url, toml="[send]\nbatch_size = 5\n")
    provider = create(config)
    fit = provider.adapt

    def adapt(message: Message) -> Message:
        if message.to_email == "user7@example.com":
            raise ValueError("a value nobody foresaw")
        return fit(message)

    provider.adapt = adapt  # type: ignore[method-assign]
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", provider=provider))
    assert summary.status == "finished" and summary.sent == 19 and summary.failed == 1
    (reason,) = summary.failed_reasons
    assert reason.startswith("user7@example.com: the message could not be made (ValueError")
