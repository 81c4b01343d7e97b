"""After a send: failed rows sent again by kind, exactly once; unknowns settled by a webhook or
by the service's own log before anything is resent (the local Postmark's message search, the
local Mailgun's Events API, the local Resend's list of emails, the local Mandrill's message
search, the local SendGrid's Email Activity API)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Log:
    """A local service whose own log `known` reads, and how a test cuts a send to it off."""

    provider: str
    service: Callable[[], Service]
    env: dict[str, str]
    lines: str = ""
    """Its `[provider]` lines besides base_url."""
    api: str = ""
    """The path of its API under the local server's URL."""
    people: int = 20
    drops: int = 1
    """Requests whose reply is cut off: half the people's messages."""
    stored: tuple[str, str] = ("", "")
    """The `state` list the service's log reads besides `delivered`, and where each of its
    records carries our send id."""

    def config(self, db_url: str, tmp_path: Path, url: str) -> Config:
        return make_config(
            tmp_path / "ws",
            db_url,
            provider=self.provider,
            toml=_toml(url + self.api, self.lines),
            **self.env,
        )

    def cut_off(self, db_url: str, tmp_path: Path, url: str, service: Service) -> Config:
        """`people` subscribers sent in requests of 10 at most; the service took them all, but
        the replies to the first `drops` requests were cut off midway: half are unknown."""
        populate(db_url, tmp_path, self.people)
        config = self.config(db_url, tmp_path, url)
        service.then(*[DROP] * self.drops)
        summary = asyncio.run(send_campaign(config, compiled(), list_name="news"))
        assert summary.unknown == summary.sent == self.people // 2
        return config

    def forget(self, service: Service, send_ids: set[str]) -> None:
        """As if the requests of `send_ids` had never reached the service."""
        service.delivered = [c for c in service.delivered if c.metadata["send_id"] not in send_ids]
        key, where = self.stored
        if key:
            service.state[key] = [
                m for m in service.state[key] if m[where]["send_id"] not in send_ids
            ]


LOGS = {
    log.provider: log
    for log in (
        Log(
            "mailgun",
            mailgun.mailgun,
            {"MAILGUN_API_KEY": mailgun.KEY},
            lines=f'domain = "{mailgun.DOMAIN}"\n',
        ),
        Log(
            "resend",
            lambda: resend.resend(requests_per_second=None),
            {"RESEND_API_KEY": resend.KEY},
            lines="requests_per_second = 1000\n",
        ),
        Log(
            "mandrill",
            mandrill.mandrill,
            {"MANDRILL_API_KEY": mandrill.KEY},
            api="/api/1.0",
            people=10,
            drops=5,  # one message a request
            stored=("messages", "metadata"),
        ),
        Log(
            "sendgrid",
            sendgrid.sendgrid,
            {"SENDGRID_API_KEY": sendgrid.KEY},
            stored=("messages", "unique_args"),
        ),
    )
}
READS = {"mailgun": 2, "resend": 17, "mandrill": 2, "sendgrid": 1}
"""Requests each lookup below makes of the service's log: Mailgun one page of events and the
empty one after it; Resend one page of its list, then each of the 16 emails it took; Mandrill
its metadata fields, then one search; SendGrid one Email Activity query."""


@pytest.mark.parametrize("name", LOGS)
def test_resend_unknown_asks_the_services_log_first(db_url: str, tmp_path: Path, name: str) -> None:
    """Of the unknown deliveries the service took all but two in five: its log says which,
    only the others are sent again, and every address gets its message once."""
    log = LOGS[name]
    service = log.service()
    with serve(service) as url:
        config = log.cut_off(db_url, tmp_path, url, service)
        engine = connect(db_url)
        unknown = [s for s, status in _by_send_id(db_url).items() if status == "unknown"]
        lost = set(unknown[: len(unknown) * 2 // 5])
        log.forget(service, lost)
        if name == "mailgun":
            _an_hour_ago(db_url, service)  # past the lag of its event log
        service.received.clear()
        said = recovery.before_send(config, engine, "c1", (), resend_unknown=True)
        taken = len(unknown) - len(lost)
        assert said == [f"{taken} unknown deliveries are in {name}'s log: sent, not resent"]
        assert len(service.received) == READS[name]
        summary = asyncio.run(
            send_campaign(config, compiled(), list_name="news", resend_unknown=True)
        )
    assert summary.ok and summary.sent == log.people
    copies = Counter(c.to for c in service.delivered)
    assert len(copies) == log.people and set(copies.values()) == {1}
    found = recovery.recovery(engine, "c1")
    assert found is not None and found.resolved == {f"{name}'s log": taken}


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


@pytest.mark.parametrize("name", LOGS)
def test_a_log_that_answers_an_error_resends_nothing_and_says_why(
    db_url: str, tmp_path: Path, name: str
) -> None:
    log = LOGS[name]
    service = log.service()
    with serve(service) as url:
        config = log.cut_off(db_url, tmp_path, url, service)
        service.then(JSONResponse({"message": "Internal error"}, 500))
        with pytest.raises(ProviderError, match=f"{name}'s .* answered 500.*nothing was resent"):
            recovery.before_send(config, connect(db_url), "c1", (), resend_unknown=True)
    half = log.people // 2
    assert Counter(_by_send_id(db_url).values()) == {"sent": half, "unknown": half}
    assert len(service.delivered) == log.people  # those taken, and those the cut-off replies hid


def test_a_dead_senders_window_ends_when_its_lease_ran_out(db_url: str, tmp_path: Path) -> None:
    """A sender died an hour ago mid-request; this run calls its claims unknown. Mailgun's log
    is read from the claim to when the sender's lease ran out, not to now."""
    service = mailgun.mailgun()
    populate(db_url, tmp_path, 3)
    engine = connect(db_url)
    send = ledger.open_send(engine, compiled(), "news", [])
    ledger.enqueue(engine, send, Store(engine).recipient_query("news"))
    assert ledger.claim(engine, send.id, worker="w", limit=3)
    claimed_at, lease_until = utcnow() - timedelta(hours=1), utcnow() - timedelta(minutes=59)
    with engine.begin() as c:
        c.execute(update(deliveries).values(claimed_at=claimed_at))
        c.execute(update(send_leases).values(lease_until=lease_until))
    with serve(service) as url:
        config = LOGS["mailgun"].config(db_url, tmp_path, url)
        assert recovery.before_send(config, engine, "c1", (), resend_unknown=True) == []
    (read,) = [dict(r.query) for r in service.received if r.method == "GET"]
    assert (read["begin"], read["end"]) == (
        str(math.floor((claimed_at - CLOCK_MARGIN).timestamp())),
        str(math.ceil((lease_until + CLOCK_MARGIN).timestamp())),
    )


def test_a_mandrill_account_without_send_id_indexed_resends_nothing(
    db_url: str, tmp_path: Path
) -> None:
    service = mandrill.mandrill()
    with serve(service) as url:
        config = LOGS["mandrill"].cut_off(db_url, tmp_path, url, service)
        service.state["indexed"] = {}
        with pytest.raises(ProviderError, match="Custom Metadata.*nothing was resent"):
            recovery.before_send(config, connect(db_url), "c1", (), resend_unknown=True)
    assert Counter(_by_send_id(db_url).values()) == {"sent": 5, "unknown": 5}
    assert len(service.delivered) == 10


def test_the_service_is_asked_about_as_many_unknowns_at_once_as_it_takes(
    db_url: str, tmp_path: Path
) -> None:
    """SendGrid's Email Activity API takes 6 requests a minute: each `known` call is given at
    most a minute's worth (`known_at_once`, here 3 to keep the test small), all are asked."""
    service = sendgrid.sendgrid()
    with serve(service) as url:
        config = LOGS["sendgrid"].cut_off(db_url, tmp_path, url, service)

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
        config = LOGS["sendgrid"].cut_off(db_url, tmp_path, url, service)
        with pytest.raises(ProviderError, match="add-on.*cannot tell.*nothing was resent"):
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
