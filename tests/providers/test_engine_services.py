"""The send engine's two hardest promises, kept with Mailgun, Amazon SES and Resend too:
a send killed with SIGKILL and run again delivers every recipient once (the unknown
ones at most the batches in flight), and 429 with Retry-After, then 500s, then
success delivers everyone once within the rate limit. Real engine, real ledger
(SQLite), real `campaign send` processes, each service's double on loopback."""

from __future__ import annotations

import os
import signal
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
from starlette.responses import JSONResponse, Response

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.config import Config, load_config
from campaign.db import connect
from campaign.providers import create
from campaign.send import send_campaign
from campaign.send.ledger import summary
from tests.schedule.conftest import make_compiled
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
    Case("mailgun", mailgun.mailgun, {"domain": mailgun.DOMAIN}, {"MAILGUN_API_KEY": mailgun.KEY},
         JSONResponse({"message": "Too many requests"}, 429, headers={"Retry-After": "1"}), 100),
    Case("ses", ses.ses, {}, {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
         Response('{"message":"Maximum sending rate exceeded."}', 429, headers={
             "x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "1", "content-type": "application/json"}), 50),
    Case("resend", lambda: resend.resend(requests_per_second=20), {"requests_per_second": 20},
         {"RESEND_API_KEY": resend.KEY},
         JSONResponse({"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."}, 429,
                      headers={"retry-after": "1"}), 100),
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
def config(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case, service: Service) -> Iterator[Config]:
    """The workspace sending through `service` (campaign.toml and .env, so `campaign send`
    processes read the same), on an SQLite file."""
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", f"sqlite:///{tmp_path / 'send.db'}")
    with serve(service) as url:
        options = {**case.options, "base_url": url}
        block = f'[provider]\nname = "{case.name}"\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in options.items())
        toml = workspace / "campaign.toml"
        toml.write_text(toml.read_text().replace('[provider]\nname = "outbox"\n', block))
        with (workspace / ".env").open("a") as env:
            env.write("".join(f"{k}={v}\n" for k, v in case.env.items()))
        yield load_config(workspace)


def subscribers(config: Config, count: int) -> list[str]:
    addresses = [f"reader{n:05}@example.org" for n in range(count)]
    csv = config.workspace / "subscribers.csv"
    csv.write_text("email,first_name\n" + "".join(f"{a},Reader{n}\n" for n, a in enumerate(addresses)))
    import_csv(Store.open(config), csv, "newsletter")
    return addresses


def deliveries(service: Service) -> Counter[str]:
    return Counter(parseaddr(copy.to)[1] for copy in service.delivered)


def set_send(config: Config, **settings: Any) -> Config:
    toml = config.workspace / "campaign.toml"
    text = toml.read_text().replace("concurrency = 4\nrate_limit = 0\n", "".join(f"{k} = {v}\n" for k, v in settings.items()))
    toml.write_text(text)
    return load_config(config.workspace)


def send_process(workspace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "campaign", "send", "2018-11-wsr-primer", "--list", "newsletter", "--yes"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_killed_send_resumes_and_delivers_each_recipient_once(config: Config, case: Case, service: Service) -> None:
    total = 3000
    config = set_send(config, concurrency=4, rate_limit=600, batch_size=case.batch)  # ~5 s: time to kill it twice
    addresses = subscribers(config, total)
    engine = connect(config.database_url)
    kills = []
    for threshold in (total // 4, total // 2):
        proc = send_process(config.workspace)
        deadline = time.monotonic() + 90
        while (s := summary(engine, "2018-11-wsr-primer")) is None or s.sent < threshold:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = summary(engine, "2018-11-wsr-primer")
        assert killed is not None and killed.sent < total
        kills.append(killed.sent)
    proc = send_process(config.workspace)
    out, err = proc.communicate(timeout=120)
    done = summary(engine, "2018-11-wsr-primer")
    assert done is not None and done.status == "finished", (out, err)
    counts = deliveries(service)
    assert max(counts.values()) == 1  # nobody twice
    assert done.sent + done.unknown == total
    assert done.unknown <= 2 * config.send.concurrency * case.batch  # only batches in flight at the kills
    assert len([a for a in addresses if a not in counts]) <= done.unknown
    print(f"{case}: killed at {kills} sent; finished with {done.sent} sent, {done.unknown} unknown")


async def test_429_then_500s_then_success_delivers_everyone_once_within_the_rate(
    config: Config, case: Case, service: Service
) -> None:
    total, rate = 600, 400
    config = set_send(config, concurrency=2, rate_limit=rate, batch_size=case.batch, backoff_seconds=0.2)
    addresses = subscribers(config, total)
    service.then(case.too_many, Response("Internal Server Error", 500), Response("Bad Gateway", 502))
    started = time.monotonic()
    async with create(config) as provider:
        result = await send_campaign(config, make_compiled(SLUG), list_name="newsletter", provider=provider)
    elapsed = time.monotonic() - started
    assert result.status == "finished" and result.sent == total
    assert deliveries(service) == Counter({a: 1 for a in addresses})
    assert elapsed >= 1.0  # Retry-After held every worker
    accepted = [r for r in service.received if r.new][3:]  # after the three scripted failures
    assert accepted, "nothing was delivered after the failures"
    span = accepted[-1].at - accepted[0].at
    sent_after_first = total - case.batch
    assert span >= sent_after_first / rate * 0.9, f"{sent_after_first} messages in {span:.2f}s exceeds {rate}/s"
    assert service.state.get("rate_limited", 0) == 0  # Resend: the provider kept to its requests per second
