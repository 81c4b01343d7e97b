"""The send engine's two hardest promises, kept with Mailgun, Amazon SES and Resend too:
a send killed with SIGKILL and run again delivers every recipient once (the unknown
ones at most the batches in flight), and 429 with Retry-After, then 500s, then
success delivers everyone once within the rate limit. Real engine, real ledger
(SQLite), real `campaign send` processes, each service's double on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.providers import create
from campaign.send import send_campaign
from campaign.send.ledger import deliveries as ledger_rows
from tests.conftest import real_sender
from tests.schedule.conftest import make_compiled
from tests.send.conftest import wait_for_leases_to_run_out
from tests.servers import mailgun, resend, serve, ses
from tests.servers.scripted import Service

SLUG = "2026-12-news"


@dataclass
class Case:
    name: str
    double: Callable[[], Service]
    options: dict[str, Any]
    env: dict[str, str]
    too_many: Response
    """The service's own 429 with Retry-After: 1."""
    batch: int

    def __str__(self) -> str:
        return self.name


CASES = [
    Case(
        "mailgun",
        mailgun.mailgun,
        {"domain": mailgun.DOMAIN},
        {"MAILGUN_API_KEY": mailgun.KEY},
        JSONResponse({"message": "Too many requests"}, 429, headers={"Retry-After": "1"}),
        100,
    ),
    Case(
        "ses",
        ses.ses,
        {},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
        Response(
            '{"message":"Maximum sending rate exceeded."}',
            429,
            headers={
                "x-amzn-ErrorType": "TooManyRequestsException",
                "Retry-After": "1",
                "content-type": "application/json",
            },
        ),
        50,
    ),
    Case(
        "resend",
        lambda: resend.resend(requests_per_second=20),
        {"requests_per_second": 20},
        {"RESEND_API_KEY": resend.KEY},
        JSONResponse(
            {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."},
            429,
            headers={"retry-after": "1"},
        ),
        100,
    ),
]


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def service(case: Case) -> Service:
    return case.double()


@pytest.fixture
def config(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case, service: Service
) -> Iterator[Config]:
    """The workspace sending through `service` (campaign.toml and .env, so `campaign send`
    processes read the same), on an SQLite file."""
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", f"sqlite:///{tmp_path / 'send.db'}")
    with serve(service) as url:
        options = {**case.options, "base_url": url}
        block = f'[provider]\nname = "{case.name}"\n' + "".join(
            f"{k} = {_toml(v)}\n" for k, v in options.items()
        )
        real_sender(workspace, block)
        with (workspace / ".env").open("a") as env:
            env.write("".join(f"{k}={v}\n" for k, v in case.env.items()))
        yield load_config(workspace)


def subscribers(config: Config, count: int) -> list[str]:
    addresses = [f"reader{n:05}@example.org" for n in range(count)]
    csv = config.workspace / "subscribers.csv"
    csv.write_text(
        "email,first_name\n" + "".join(f"{a},Reader{n}\n" for n, a in enumerate(addresses))
    )
    import_csv(Store.open(config), csv, "newsletter")
    return addresses


def deliveries(service: Service) -> Counter[str]:
    return Counter(parseaddr(copy.to)[1] for copy in service.delivered)


def set_send(config: Config, **settings: Any) -> Config:
    toml = config.workspace / "campaign.toml"
    text = toml.read_text().replace(
        "concurrency = 4\nrate_limit = 0\n", "".join(f"{k} = {v}\n" for k, v in settings.items())
    )
    toml.write_text(text)
    return load_config(config.workspace)


def send_process(workspace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign",
            "send",
            "2018-11-wsr-primer",
            "--list",
            "newsletter",
            "--yes",
        ],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


RECIPIENTS = 3000
LEASE = 1.0
"""Seconds a killed run's claims stay its own."""
KILL_AT = (1, 750, 1500, 2250)
"""Deliveries the service has taken when each run is killed (1: as soon as sending starts)."""


@pytest.mark.slow
def test_killed_send_resumes_and_delivers_each_recipient_once(
    config: Config, case: Case, service: Service
) -> None:
    config = set_send(
        config,
        concurrency=4,
        rate_limit=0,
        batch_size=case.batch,
        backoff_seconds=0.05,
        lease_seconds=LEASE,
    )
    subscribers(config, RECIPIENTS)
    for threshold in KILL_AT:
        proc = send_process(config.workspace)
        deadline = time.monotonic() + 60
        while len(service.delivered) < threshold:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the send made no progress"
            time.sleep(0.005)
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.wait()
        wait_for_leases_to_run_out(config.database_url, LEASE * 5)  # then its claims are dead
    final = send_process(config.workspace)
    out, err = final.communicate(timeout=120)
    assert final.returncode in (0, 1), (out, err)
    with connect(config.database_url).connect() as c:
        status = dict(c.execute(select(ledger_rows.c.email, ledger_rows.c.status)).all())
    assert len(status) == RECIPIENTS and set(status.values()) <= {"sent", "unknown"}
    unknown = {email for email, s in status.items() if s == "unknown"}
    counts = deliveries(service)
    assert max(counts.values()) == 1, "someone got the newsletter twice"
    assert set(status) - set(counts) <= unknown, "someone the ledger calls sent never got it"
    assert {e for e, s in status.items() if s == "sent"} <= set(counts)
    assert len(unknown) <= len(KILL_AT) * case.batch * config.send.concurrency
    if unknown:
        assert final.returncode == 1 and "unknown" in out
    print(
        f"{case}: {RECIPIENTS} recipients, killed {len(KILL_AT)} times; "
        f"{RECIPIENTS - len(unknown)} sent, {len(unknown)} unknown"
    )


async def test_429_then_500s_then_success_delivers_everyone_once_within_the_rate(
    config: Config, case: Case, service: Service
) -> None:
    total, rate = 300, 400
    config = set_send(
        config,
        concurrency=4,
        rate_limit=rate,
        batch_size=min(case.batch, 50),
        backoff_seconds=0.02,
        backoff_max_seconds=0.1,
    )
    addresses = subscribers(config, total)
    service.then(
        case.too_many,
        Response("Internal Server Error", 500),
        Response("Internal Server Error", 500),
        Response("Service Unavailable", 503),
    )
    started = time.monotonic()
    async with create(config) as provider:
        result = await send_campaign(
            config, make_compiled(SLUG), list_name="newsletter", provider=provider
        )
    assert result.ok and result.sent == total
    assert deliveries(service) == Counter({a: 1 for a in addresses})
    # Retry-After (1 s) held every worker: nothing was taken in the second after the 429.
    times = sorted(copy.at for copy in service.delivered)
    assert times[0] - started >= 1.0
    # The rate: 400/s in batches of 50, so 300 messages span at least (300 - 50) / 400 s
    # (less a little: the double stamps each batch when it has parsed it).
    assert times[-1] - times[0] >= (total - 50) / rate - 0.05
    for second in range(int(times[-1] - times[0]) + 1):
        window = [t for t in times if times[0] + second <= t < times[0] + second + 1]
        assert len(window) <= rate + 50
    assert (
        service.state.get("rate_limited", 0) == 0
    )  # Resend: the provider kept to its requests per second
