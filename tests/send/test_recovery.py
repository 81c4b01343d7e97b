"""After a send: failed rows sent again by kind, exactly once; unknowns settled by a webhook or
by the service's own log before anything is resent (the local Postmark's message search, the
local Mailgun's Events API, the local Resend's list of emails, the local Mandrill's message search, the
local SendGrid's Email Activity API)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.responses import JSONResponse

from campaign.audience import Store
from campaign.audience.tables import utcnow
from campaign.config import Config
from campaign.db import connect
from campaign.errors import ProviderError, UserError
from campaign.providers import create
from campaign.providers.base import CLOCK_MARGIN, Unknown
from campaign.send import ledger, recovery, send_campaign
from campaign.send.lease import send_leases
from campaign.send.ledger import deliveries
from tests.conftest import real_sender, run_cli
from tests.send.conftest import compiled, make_config, populate
from tests.servers import mailgun, mandrill, resend, sendgrid, serve
from tests.servers.postmark import TOKEN, PostmarkServer, Reply
from tests.servers.scripted import DROP, Service


@pytest.fixture
def postmark() -> Iterator[tuple[PostmarkServer, str]]:
    server = PostmarkServer()
    with serve(server.app) as url:
        yield server, url


@pytest.fixture
def mailgun_service() -> Iterator[tuple[Service, str]]:
    service = mailgun.mailgun()
    with serve(service) as url:
        yield service, url


def _toml(url: str, provider: str = "") -> str:
    return (
        f'base_url = "{url}"\n{provider}[send]\nbatch_size = 10\nconcurrency = 1\n'
        "backoff_seconds = 0.02\nmax_attempts = 1\n"
    )


def _statuses(db_url: str) -> dict[str, str]:
    with connect(db_url).connect() as c:
        return dict(c.execute(select(deliveries.c.email, deliveries.c.status)).all())


def test_parse_kinds() -> None:
    assert recovery.parse_kinds("all") == recovery.parse_kinds("") == ("rejected", "temporary")
    assert recovery.parse_kinds("temporary, rejected,temporary") == ("temporary", "rejected")
    with pytest.raises(UserError, match="unknown kind bounced"):
        recovery.parse_kinds("rejected,bounced")


def test_retry_failed_by_kind_sends_each_once(
    db_url: str, postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    server, url = postmark
    populate(db_url, tmp_path, 30)
    config = make_config(tmp_path / "ws", db_url, provider="postmark", toml=_toml(url))
    engine = connect(db_url)
    server.inactive = {"user13@example.com", "user14@example.com"}
    server.then(Reply(500))  # the first batch: out of attempts at once
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.failed == 12
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.failed == {"rejected": 2, "temporary": 10}
    lines = "\n".join(found.lines())
    assert "2 failed as rejected" in lines
    assert "`campaign send c1 --list news --retry-failed=rejected`" in lines
    assert [f.email for f in recovery.failed(engine, "c1") if f.kind == "rejected"] == [
        "user13@example.com",
        "user14@example.com",
    ]
    # The temporary ones come back by themselves on the next run; the rejected only on request.
    server.inactive = set()
    assert recovery.retry_failed(engine, "c1", ["rejected"]) == 2
    assert recovery.retry_failed(engine, "c1", ["rejected"]) == 0  # queued once, not twice
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.ok and summary.sent == 30
    assert recovery.retry_failed(engine, "c1") == 0  # nothing failed: nothing touched
    counts = server.deliveries()
    assert len(counts) == 30 and set(counts.values()) == {1}


def test_a_delivery_event_settles_an_unknown_delivery(db_url: str, tmp_path: Path) -> None:
    populate(db_url, tmp_path, 3)
    engine = connect(db_url)
    send = ledger.open_send(engine, compiled(), "news", [])
    ledger.enqueue(engine, send, Store(engine).recipient_query("news"))
    batch = ledger.claim(engine, send.id, worker="w", limit=3)
    assert batch is not None
    ledger.record(
        engine,
        "w",
        [ledger.Outcome(q.send_id, "unknown", None, "timeout") for q in batch],
    )
    assert ledger.record_event(engine, send_id=batch[0].send_id, event="delivered")
    assert ledger.record_event(engine, send_id=batch[1].send_id, event="bounced")
    assert ledger.record_event(engine, send_id=batch[1].send_id, event="opened")
    statuses = _statuses(db_url)
    assert sorted(statuses.values()) == ["sent", "sent", "unknown"]
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"bounced webhook": 1, "delivered webhook": 1}
    assert (
        "unknown resolved as sent: 1 by bounced webhook, 1 by delivered webhook"
        in found.lines()[-1]
    )
    # Queued again to resend, then the event arrives: the queued row is settled, never resent.
    ledger.prepare(engine, send.id, resend_unknown=True)
    assert ledger.record_event(engine, send_id=batch[2].send_id, event="delivered")
    assert ledger.claim(engine, send.id, worker="w", limit=3) == []


def test_resend_unknown_asks_postmark_first(
    db_url: str, postmark: tuple[PostmarkServer, str], tmp_path: Path
) -> None:
    """Of 10 unknown deliveries Postmark has 6: only the other 4 are sent again."""
    server, url = postmark
    populate(db_url, tmp_path, 20)
    config = make_config(tmp_path / "ws", db_url, provider="postmark", toml=_toml(url))
    engine = connect(db_url)
    server.then(Reply(drop=True))  # the first batch is taken, the reply is lost
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.unknown == 10 and summary.sent == 10
    unknown = [send_id for send_id, status in _by_send_id(db_url).items() if status == "unknown"]
    lost = set(unknown[:4])  # as if these requests had never reached Postmark
    server.accepted = [a for a in server.accepted if a.send_id not in lost]
    said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
    assert said == ["6 unknown deliveries are in postmark's log: sent, not resent"]
    assert server.searches == 10
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", resend_unknown=True))
    assert summary.ok and summary.sent == 20
    counts = server.deliveries()
    assert len(counts) == 20 and set(counts.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"postmark's log": 6}


def _mailgun_config(db_url: str, tmp_path: Path, url: str) -> Config:
    return make_config(
        tmp_path / "ws",
        db_url,
        provider="mailgun",
        toml=_toml(url, f'domain = "{mailgun.DOMAIN}"\n'),
        MAILGUN_API_KEY=mailgun.KEY,
    )


def _mailgun_cut_off(db_url: str, tmp_path: Path, url: str, service: Service) -> Config:
    """20 subscribers sent in two batches through the local Mailgun; it took the first, but
    the reply was cut off midway: 10 sent, 10 unknown."""
    populate(db_url, tmp_path, 20)
    config = _mailgun_config(db_url, tmp_path, url)
    service.then(DROP)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.unknown == 10 and summary.sent == 10
    return config


def _an_hour_ago(db_url: str, service: Service) -> None:
    """As if the cut-off send had been an hour ago (the ledger's times and Mailgun's events),
    when the lag of Mailgun's event log no longer hides anything."""
    hour = timedelta(hours=1)
    with connect(db_url).begin() as c:
        for send_id, claimed_at, updated_at in c.execute(
            select(deliveries.c.send_id, deliveries.c.claimed_at, deliveries.c.updated_at)
        ).all():
            c.execute(
                update(deliveries)
                .where(deliveries.c.send_id == send_id)
                .values(claimed_at=claimed_at - hour, updated_at=updated_at - hour)
            )
    for copy in service.delivered:
        copy.timestamp -= hour.total_seconds()


def _event_reads(service: Service) -> int:
    return sum(r.method == "GET" and "/events" in r.path for r in service.received)


def test_resend_unknown_asks_mailguns_event_log_first(
    db_url: str, mailgun_service: tuple[Service, str], tmp_path: Path
) -> None:
    """Of 10 unknown deliveries Mailgun took 6: only the other 4 are sent again; one time
    window holds them all, read in one page and the empty one after it."""
    service, url = mailgun_service
    config = _mailgun_cut_off(db_url, tmp_path, url, service)
    engine = connect(db_url)
    unknown = [send_id for send_id, status in _by_send_id(db_url).items() if status == "unknown"]
    lost = set(unknown[:4])  # as if these had never reached Mailgun
    service.delivered = [c for c in service.delivered if c.metadata["send_id"] not in lost]
    _an_hour_ago(db_url, service)
    said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
    assert said == ["6 unknown deliveries are in mailgun's log: sent, not resent"]
    assert _event_reads(service) == 2
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", resend_unknown=True))
    assert summary.ok and summary.sent == 20
    copies = Counter(c.to for c in service.delivered)
    assert len(copies) == 20 and set(copies.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"mailgun's log": 6}


def test_an_event_log_error_resends_nothing_and_says_why(
    db_url: str, mailgun_service: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = mailgun_service
    config = _mailgun_cut_off(db_url, tmp_path, url, service)
    engine = connect(db_url)
    service.then(JSONResponse({"message": "Internal error"}, 500))
    with pytest.raises(
        ProviderError, match="event log answered 500: Internal error; nothing was resent"
    ):
        recovery.before_send(config, engine, "c1", (), resend_unknown=True)
    assert Counter(_by_send_id(db_url).values()) == {"sent": 10, "unknown": 10}
    assert len(service.delivered) == 20  # the 10 taken, and the 10 the cut-off reply hid


def test_a_dead_senders_window_ends_when_its_lease_ran_out(
    db_url: str, mailgun_service: tuple[Service, str], tmp_path: Path
) -> None:
    """A sender died an hour ago mid-request; this run calls its claims unknown. Mailgun's log
    is read from the claim to when the sender's lease ran out, not to now."""
    service, url = mailgun_service
    populate(db_url, tmp_path, 3)
    config = _mailgun_config(db_url, tmp_path, url)
    engine = connect(db_url)
    send = ledger.open_send(engine, compiled(), "news", [])
    ledger.enqueue(engine, send, Store(engine).recipient_query("news"))
    assert ledger.claim(engine, send.id, worker="w", limit=3)
    claimed_at, lease_until = utcnow() - timedelta(hours=1), utcnow() - timedelta(minutes=59)
    with engine.begin() as c:
        c.execute(update(deliveries).values(claimed_at=claimed_at))
        c.execute(update(send_leases).values(lease_until=lease_until))
    assert recovery.before_send(config, engine, "c1", (), resend_unknown=True) == []
    (read,) = [dict(r.query) for r in service.received if r.method == "GET"]
    assert (read["begin"], read["end"]) == (
        str(math.floor((claimed_at - CLOCK_MARGIN).timestamp())),
        str(math.ceil((lease_until + CLOCK_MARGIN).timestamp())),
    )


def _mandrill_cut_off(db_url: str, tmp_path: Path, url: str, service: Service) -> Config:
    """10 subscribers through the local Mandrill, one message a request: it took the first
    five, but each reply was cut off midway: 5 sent, 5 unknown."""
    populate(db_url, tmp_path, 10)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="mandrill",
        toml=_toml(f"{url}/api/1.0"),
        MANDRILL_API_KEY=mandrill.KEY,
    )
    service.then(*[DROP] * 5)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.unknown == 5 and summary.sent == 5
    return config


def test_resend_unknown_asks_mandrills_message_search_first(db_url: str, tmp_path: Path) -> None:
    """Of 5 unknown deliveries Mandrill took 3: one search finds them, only the other 2 are sent
    again, and every address gets its message once."""
    service = mandrill.mandrill()
    with serve(service) as url:
        config = _mandrill_cut_off(db_url, tmp_path, url, service)
        engine = connect(db_url)
        unknown = [s for s, status in _by_send_id(db_url).items() if status == "unknown"]
        lost = set(unknown[:2])  # as if these requests had never reached Mandrill
        service.state["messages"] = [
            m for m in service.state["messages"] if m["metadata"]["send_id"] not in lost
        ]
        service.delivered = [c for c in service.delivered if c.metadata["send_id"] not in lost]
        said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
        assert said == ["3 unknown deliveries are in mandrill's log: sent, not resent"]
        assert sum(r.path.endswith("/messages/search.json") for r in service.received) == 1
        summary = asyncio.run(
            send_campaign(config, compiled(), list_name="news", resend_unknown=True)
        )
    assert summary.ok and summary.sent == 10
    copies = Counter(c.to for c in service.delivered)
    assert len(copies) == 10 and set(copies.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"mandrill's log": 3}


def test_a_mandrill_account_without_send_id_indexed_resends_nothing(
    db_url: str, tmp_path: Path
) -> None:
    service = mandrill.mandrill()
    with serve(service) as url:
        config = _mandrill_cut_off(db_url, tmp_path, url, service)
        service.state["indexed"] = {}
        with pytest.raises(ProviderError, match="Custom Metadata.*nothing was resent"):
            recovery.before_send(config, connect(db_url), "c1", (), resend_unknown=True)
    assert Counter(_by_send_id(db_url).values()) == {"sent": 5, "unknown": 5}
    assert len(service.delivered) == 10


def _sendgrid_cut_off(db_url: str, tmp_path: Path, url: str, service: Service) -> Config:
    """20 subscribers through the local SendGrid in two batches: it took the first, but the
    reply was cut off midway: 10 sent, 10 unknown."""
    populate(db_url, tmp_path, 20)
    config = make_config(
        tmp_path / "ws", db_url, provider="sendgrid", toml=_toml(url), SENDGRID_API_KEY=sendgrid.KEY
    )
    service.then(DROP)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.unknown == 10 and summary.sent == 10
    return config


def test_resend_unknown_asks_sendgrids_email_activity_first(db_url: str, tmp_path: Path) -> None:
    """Of 10 unknown deliveries SendGrid took 6: one Email Activity query finds them, only the
    other 4 are sent again, and every address gets its message once."""
    service = sendgrid.sendgrid()
    with serve(service) as url:
        config = _sendgrid_cut_off(db_url, tmp_path, url, service)
        engine = connect(db_url)
        unknown = [s for s, status in _by_send_id(db_url).items() if status == "unknown"]
        lost = set(unknown[:4])  # as if SendGrid had never taken these
        service.state["messages"] = [
            m for m in service.state["messages"] if m["unique_args"]["send_id"] not in lost
        ]
        service.delivered = [c for c in service.delivered if c.metadata["send_id"] not in lost]
        said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
        assert said == ["6 unknown deliveries are in sendgrid's log: sent, not resent"]
        assert sum(r.method == "GET" for r in service.received) == 1
        summary = asyncio.run(
            send_campaign(config, compiled(), list_name="news", resend_unknown=True)
        )
    assert summary.ok and summary.sent == 20
    copies = Counter(c.to for c in service.delivered)
    assert len(copies) == 20 and set(copies.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"sendgrid's log": 6}


def test_the_service_is_asked_about_as_many_unknowns_at_once_as_it_takes(
    db_url: str, tmp_path: Path
) -> None:
    """SendGrid's Email Activity API takes 6 requests a minute: each `known` call is given at
    most a minute's worth (`known_at_once`, here 3 to keep the test small), all are asked."""
    service = sendgrid.sendgrid()
    with serve(service) as url:
        config = _sendgrid_cut_off(db_url, tmp_path, url, service)

        async def ask() -> int:
            async with create(config) as provider:
                provider.known_at_once = 3  # type: ignore[misc]
                return await recovery.resolve_unknown(connect(db_url), "c1", provider)

        assert asyncio.run(ask()) == 10
    queries = [dict(r.query)["query"] for r in service.received if r.method == "GET"]
    assert [q.count(" OR ") + 1 for q in queries] == [3, 3, 3, 1]


def test_sendgrid_without_the_email_activity_add_on_resends_nothing(
    db_url: str, tmp_path: Path
) -> None:
    service = sendgrid.sendgrid(activity=False)
    with serve(service) as url:
        config = _sendgrid_cut_off(db_url, tmp_path, url, service)
        with pytest.raises(ProviderError, match="add-on.*cannot tell.*nothing was resent"):
            recovery.before_send(config, connect(db_url), "c1", (), resend_unknown=True)
    assert Counter(_by_send_id(db_url).values()) == {"sent": 10, "unknown": 10}
    assert len(service.delivered) == 20


def _by_send_id(db_url: str) -> dict[str, str]:
    with connect(db_url).connect() as c:
        return dict(c.execute(select(deliveries.c.send_id, deliveries.c.status)).all())


@pytest.fixture
def resend_service() -> Iterator[tuple[Service, str]]:
    service = resend.resend(requests_per_second=None)
    with serve(service) as url:
        yield service, url


def _resend_cut_off(db_url: str, tmp_path: Path, url: str, service: Service) -> Config:
    """20 subscribers sent in two batches through the local Resend; it took both, but the
    first reply was cut off midway: 10 sent, 10 unknown."""
    populate(db_url, tmp_path, 20)
    config = make_config(
        tmp_path / "ws",
        db_url,
        provider="resend",
        toml=_toml(url, "requests_per_second = 1000\n"),
        RESEND_API_KEY=resend.KEY,
    )
    service.then(DROP)
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
    assert summary.unknown == 10 and summary.sent == 10
    return config


def test_resend_unknown_asks_resends_email_list_first(
    db_url: str, resend_service: tuple[Service, str], tmp_path: Path
) -> None:
    """Of 10 unknown deliveries Resend took 6: only the other 4 are sent again, in a batch of
    their own (a new Idempotency-Key, which Resend could not have matched)."""
    service, url = resend_service
    config = _resend_cut_off(db_url, tmp_path, url, service)
    engine = connect(db_url)
    unknown = [send_id for send_id, status in _by_send_id(db_url).items() if status == "unknown"]
    lost = set(unknown[:4])  # as if these had never reached Resend
    service.delivered = [c for c in service.delivered if c.metadata["send_id"] not in lost]
    said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
    assert said == ["6 unknown deliveries are in resend's log: sent, not resent"]
    summary = asyncio.run(send_campaign(config, compiled(), list_name="news", resend_unknown=True))
    assert summary.ok and summary.sent == 20
    copies = Counter(c.to for c in service.delivered)
    assert len(copies) == 20 and set(copies.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {"resend's log": 6}


def test_a_resend_email_list_error_resends_nothing_and_says_why(
    db_url: str, resend_service: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = resend_service
    config = _resend_cut_off(db_url, tmp_path, url, service)
    service.then(JSONResponse({"name": "application_error", "message": "Boom"}, 500))
    with pytest.raises(ProviderError, match="email list answered 500: Boom; nothing was resent"):
        recovery.before_send(config, connect(db_url), "c1", (), resend_unknown=True)
    assert Counter(_by_send_id(db_url).values()) == {"sent": 10, "unknown": 10}
    assert len(service.delivered) == 20


def _by_send_id(db_url: str) -> dict[str, str]:
    with connect(db_url).connect() as c:
        return dict(c.execute(select(deliveries.c.send_id, deliveries.c.status)).all())


def test_known_without_a_search_api_knows_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path / "ws", f"sqlite:///{tmp_path / 'db.sqlite'}")

    async def ask() -> set[str]:
        async with create(config) as provider:
            now = utcnow()
            return await provider.known([Unknown(i, now, now, f"{i}@example.com") for i in "ab"])

    assert asyncio.run(ask()) == set()


def test_cli_retry_failed_and_status_failed(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = "2018-11-wsr-primer"
    server = PostmarkServer()
    monkeypatch.setenv("POSTMARK_SERVER_TOKEN", TOKEN)
    with serve(server.app) as url:
        real_sender(workspace, f'[provider]\nname = "postmark"\nbase_url = "{url}"\n')
        assert (
            run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "nl")[0]
            == 0
        )
        server.inactive = {"ana.lopez@example.org"}
        code, out, _ = run_cli(capsys, "send", slug, "--list", "nl", "--yes")
        assert code == 1 and "4 sent, 1 failed" in out
        assert (
            f"1 failed as rejected: after fixing the cause, `campaign send {slug} --list nl --retry-failed=rejected`"
            in out
        )
        # exit 2: failed deliveries wait for a decision (retry or leave them)
        code, out, _ = run_cli(capsys, "status", slug, "--failed")
        assert code == 2 and "ana.lopez@example.org  rejected  Postmark" in out
        server.inactive = set()
        code, out, _ = run_cli(
            capsys, "send", slug, "--list", "nl", "--yes", "--retry-failed=rejected"
        )
        assert code == 0 and "1 failed deliveries (rejected) queued again" in out
        assert "5 sent, 0 failed" in out
        code, out, _ = run_cli(capsys, "send", slug, "--list", "nl", "--yes", "--retry-failed=all")
        assert code == 0 and "0 failed deliveries (rejected, temporary) queued again" in out
        code, _, err = run_cli(
            capsys, "send", slug, "--list", "nl", "--yes", "--retry-failed=later"
        )
        assert code != 0 and "unknown kind later" in err
    counts = server.deliveries()
    assert len(counts) == 5 and set(counts.values()) == {1}
