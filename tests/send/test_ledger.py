"""The ledger on SQLite and PostgreSQL: claims never overlap, resume rules, events, the archive."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from campaign.audience.tables import utcnow
from campaign.db import connect
from campaign.errors import UserError
from campaign.send import lease, ledger
from campaign.send.lease import Keeper, send_leases
from campaign.send.ledger import Outcome, deliveries
from tests.send.conftest import compiled, populate


def _open(db_url: str, tmp_path: Path, count: int = 10) -> tuple[ledger.SendInfo, object]:
    store = populate(db_url, tmp_path, count)
    engine = connect(db_url)
    send = ledger.open_send(engine, compiled(), "news", [])
    assert ledger.enqueue(engine, send, store.recipient_query("news")) == count
    return send, store


def _statuses(db_url: str) -> dict[int, str]:
    with connect(db_url).connect() as c:
        return dict(c.execute(select(deliveries.c.subscriber_id, deliveries.c.status)).all())


def test_enqueue_is_idempotent_and_claims_never_overlap(db_url: str, tmp_path: Path) -> None:
    send, store = _open(db_url, tmp_path)
    engine = connect(db_url)
    again = ledger.open_send(engine, compiled(), "news", [])
    ledger.enqueue(engine, again, store.recipient_query("news"))  # type: ignore[attr-defined]
    assert ledger.summary(engine, "c1").pending == 10  # type: ignore[union-attr]
    first = ledger.claim(engine, send.id, worker="a", limit=4)
    second = ledger.claim(engine, send.id, worker="b", limit=4)
    third = ledger.claim(engine, send.id, worker="c", limit=4)
    assert first and second and third is not None
    ids = [q.send_id for q in (*first, *second, *third)]
    assert len(ids) == len(set(ids)) == 10
    assert (
        first[0].public_id and first[0].fields["first_name"] == "First0" and first[0].attempts == 1
    )
    assert ledger.claim(engine, send.id, worker="d", limit=4) == []
    assert set(_statuses(db_url).values()) == {"sending"}


def test_outcomes_and_summary(db_url: str, tmp_path: Path) -> None:
    send, _ = _open(db_url, tmp_path, 4)
    engine = connect(db_url)
    batch = ledger.claim(engine, send.id, worker="w", limit=4)
    assert batch
    later = utcnow() + timedelta(hours=1)
    ledger.record(
        engine,
        "w",
        [
            Outcome(batch[0].send_id, "sent", "pm-1"),
            Outcome(batch[1].send_id, "failed", None, "inactive recipient"),
            Outcome(batch[2].send_id, "pending", None, "429", retry_at=later),
            Outcome(batch[3].send_id, "unknown", None, "timeout"),
        ],
    )
    ledger.record(
        engine, "someone-else", [Outcome(batch[1].send_id, "sent", "x")]
    )  # not theirs: ignored
    summary = ledger.summary(engine, "c1")
    assert summary is not None
    assert summary.counts == {"sent": 1, "failed": 1, "pending": 1, "unknown": 1}
    assert summary.failed_reasons == {"inactive recipient": 1} and summary.unknown_reasons == {
        "timeout": 1
    }
    assert ledger.claim(engine, send.id, worker="w", limit=10) == []  # the retry is not due yet
    assert ledger.next_retry_at(engine, send.id) is not None
    assert not ledger.finish_if_done(engine, send.id)


def test_resume_rules(db_url: str, tmp_path: Path) -> None:
    """A claim is dead once its worker's lease ran out, whatever its pid or host: even a worker
    id naming this very process (PID 1 in a container, or a reused pid) is judged by its lease."""
    send, _ = _open(db_url, tmp_path, 6)
    engine = connect(db_url)
    same_pid_expired = ledger.new_worker_id()  # this very process, by host and pid
    live_here = ledger.new_worker_id()
    far_old, far_new = "elsewhere:1:a", "elsewhere:1:b"  # one hostname, one pid: two workers
    workers = [same_pid_expired, live_here, far_old, far_new]
    claimed = {w: ledger.claim(engine, send.id, worker=w, limit=1) for w in workers}
    with engine.begin() as c:
        c.execute(
            update(send_leases)
            .where(send_leases.c.worker_id.in_([same_pid_expired, far_old]))
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    rest = ledger.claim(engine, send.id, worker="w", limit=2)
    assert rest
    ledger.record(
        engine,
        "w",
        [
            Outcome(rest[0].send_id, "failed", None, "gave up", retry_at=utcnow()),
            Outcome(rest[1].send_id, "failed", None, "bad address"),
        ],
    )

    assert ledger.prepare(engine, send.id) == 2  # the two whose lease ran out
    by_worker = {}
    with engine.connect() as c:
        for row in c.execute(
            select(deliveries.c.claimed_by, deliveries.c.status, deliveries.c.reason)
        ):
            by_worker.setdefault(row.claimed_by, []).append(row.status)
    assert by_worker[same_pid_expired] == ["unknown"] and by_worker[far_old] == ["unknown"]
    assert by_worker[live_here] == ["sending"] and by_worker[far_new] == ["sending"]
    assert sorted(by_worker["w"]) == [
        "failed",
        "pending",
    ]  # retryable failure queued again; rejected not
    assert all(claimed.values())

    ledger.prepare(engine, send.id, resend_unknown=True)
    assert sorted(_statuses(db_url).values()).count("pending") == 3


def test_unsubscribed_since_the_send_began_are_skipped(db_url: str, tmp_path: Path) -> None:
    send, store = _open(db_url, tmp_path, 3)
    store.unsubscribe("user1@example.com", source="test")  # type: ignore[attr-defined]
    engine = connect(db_url)
    batch = ledger.claim(
        engine, send.id, worker="w", limit=10, mailable=lambda ids: store.mailable_ids(ids, "news")
    )  # type: ignore[attr-defined]
    assert batch is not None and sorted(q.email for q in batch) == [
        "user0@example.com",
        "user2@example.com",
    ]
    assert ledger.summary(engine, "c1").skipped == 1  # type: ignore[union-attr]


def test_paused_send_is_not_claimed(db_url: str, tmp_path: Path) -> None:
    send, _ = _open(db_url, tmp_path, 2)
    engine = connect(db_url)
    ledger.set_status(engine, send.id, "paused", "too many failures")
    assert ledger.claim(engine, send.id, worker="w", limit=10) is None
    resumed = ledger.open_send(engine, compiled(), "news", [])
    assert resumed.status == "running" and resumed.note == ""


def test_one_send_per_campaign(db_url: str, tmp_path: Path) -> None:
    _open(db_url, tmp_path, 1)
    with pytest.raises(UserError, match="already sent to list 'news'"):
        ledger.open_send(connect(db_url), compiled(), "other", [])


def test_record_event_and_archive(db_url: str, tmp_path: Path) -> None:
    send, _ = _open(db_url, tmp_path, 2)
    engine = connect(db_url)
    batch = ledger.claim(engine, send.id, worker="w", limit=2)
    assert batch
    ledger.record(
        engine,
        "w",
        [Outcome(batch[0].send_id, "sent", "pm-1"), Outcome(batch[1].send_id, "sent", "pm-2")],
    )
    assert ledger.record_event(
        engine, provider_id="pm-1", event="bounced", detail="hard: mailbox gone"
    )
    assert ledger.record_event(
        engine, provider_id="pm-1", event="delivered"
    )  # matched, but weaker: kept bounced
    assert ledger.record_event(engine, send_id=batch[1].send_id, event="complained")
    assert not ledger.record_event(engine, provider_id="nope", event="delivered")
    with engine.connect() as c:
        events = dict(c.execute(select(deliveries.c.provider_id, deliveries.c.event)).all())
    assert events == {"pm-1": "bounced", "pm-2": "complained"}
    found = ledger.get_send(engine, "c1")
    assert found is not None and found.compiled == compiled() and found.list_name == "news"
    assert [s.campaign for s in ledger.sent_campaigns(engine)] == ["c1"]
    assert ledger.get_send(engine, "never") is None


def test_a_keeper_renews_its_lease_while_it_works_and_gives_it_up(db_url: str) -> None:
    engine = connect(db_url)

    def until() -> list[object]:
        with engine.connect() as c:
            return list(c.execute(select(send_leases.c.lease_until)).scalars())

    with Keeper(engine, "w", seconds=0.3):
        first = until()
        assert len(first) == 1
        deadline = time.monotonic() + 10
        while until() == first:  # renewed every 0.1 s by its thread
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.01)
        with engine.connect() as c:
            assert lease.live(c, ["w", "other"], utcnow()) == {"w"}
    assert until() == []
