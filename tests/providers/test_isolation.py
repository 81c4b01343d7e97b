"""One recipient's problem is theirs, on every provider: the real engine and ledger (SQLite)
sending through each service's double on loopback.

A list holding an IDN-domain address, a non-ASCII local part, names holding each service's
merge syntax, a 200-character name and a name with a comma: everyone else is sent exactly
once; the odd ones are sent as they must arrive (byte for byte, after the service's own
substitution) or failed with their reason; no send stops. An account-level refusal stops
the send with the service's words, everyone still pending, and the next run sends them.
"""

from __future__ import annotations

import asyncio
import csv
import html
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.config import Config
from campaign.db import connect
from campaign.errors import ProviderError
from campaign.send import send_campaign
from campaign.send.engine import SendSummary
from campaign.send.ledger import deliveries
from tests.send.conftest import compiled, make_config
from tests.servers import brevo, mailgun, mandrill, resend, sendgrid, serve, ses
from tests.servers.postmark import PostmarkServer
from tests.servers.scripted import Service


@dataclass
class Case:
    name: str
    double: Callable[..., Service]
    options: dict[str, Any]
    env: dict[str, str]
    refusal: Response | None
    """The service refusing the account, in its own words (None: `refuse` below)."""
    words: str
    fails: tuple[str, ...] = ()
    """First names this service cannot carry in the text (no escape): failed with the reason."""
    suffix: str = ""
    """After the double's address in base_url."""

    def __str__(self) -> str:
        return self.name


CASES = [
    Case(
        "mailgun",
        mailgun.mailgun,
        {"domain": mailgun.DOMAIN},
        {"MAILGUN_API_KEY": mailgun.KEY},
        JSONResponse({"message": "Domain is not allowed to send large batches yet"}, 403),
        "not allowed to send large batches yet",
    ),
    Case(
        "sendgrid",
        sendgrid.sendgrid,
        {},
        {"SENDGRID_API_KEY": sendgrid.KEY},
        JSONResponse(
            {
                "errors": [
                    {
                        "field": "from",
                        "message": "The from address does not match a verified Sender Identity.",
                    }
                ]
            },
            403,
        ),
        "does not match a verified Sender Identity",
    ),
    Case(
        "ses",
        ses.ses,
        {},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
        ses.error(400, "MessageRejected", "Email address is not verified."),
        "Email address is not verified",
    ),
    Case(
        "resend",
        lambda: resend.resend(requests_per_second=50),
        {"requests_per_second": 50},
        {"RESEND_API_KEY": resend.KEY},
        JSONResponse(
            {
                "statusCode": 403,
                "name": "validation_error",
                "message": "You can only send testing emails to your own email address.",
            },
            403,
        ),
        "only send testing emails",
    ),
    Case(
        "brevo",
        brevo.brevo,
        {},
        {"BREVO_API_KEY": brevo.KEY},
        JSONResponse({"code": "not_enough_credits", "message": "Not enough credits"}, 402),
        "Not enough credits",
        fails=("{{x}}", "{%x%}", "{{ params.x }}"),
    ),
    Case(
        "mandrill",
        mandrill.mandrill,
        {},
        {"MANDRILL_API_KEY": mandrill.KEY},
        None,  # every recipient `rejected` for `unsigned`: the sending domain lacks DKIM/SPF
        "unsigned",
        suffix="/api/1.0",
    ),
]

ODD_NAMES = [
    "{{x}}",
    "{%x%}",
    "%recipient.x%",
    "*|FNAME|*",
    "{{ params.x }}",
    "A" * 200,
    "Doe, Jane",
]
IDN = "juergen@exämple.org"
IDN_SENT = "juergen@xn--exmple-cua.org"
LOCAL = "jürgen@example.org"


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name"])
        writer.writerows([(email, first, "Last") for email, first in rows])


def odd_list() -> list[tuple[str, str]]:
    """(address, first name): plain readers around the odd ones."""
    rows = [(f"reader{i}@example.org", f"Reader{i}") for i in range(5)]
    rows += [(IDN, "Jürgen"), (LOCAL, "Jürgen")]
    rows += [(f"odd{i}@example.org", name) for i, name in enumerate(ODD_NAMES)]
    return rows + [(f"reader{i}@example.org", f"Reader{i}") for i in range(5, 10)]


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def service(case: Case) -> Service:
    return case.double()


@pytest.fixture
def config(tmp_path: Path, case: Case, service: Service) -> Iterator[Config]:
    with serve(service) as url:
        options = "".join(f'{k} = "{v}"\n' for k, v in case.options.items() if isinstance(v, str))
        options += "".join(
            f"{k} = {v}\n" for k, v in case.options.items() if not isinstance(v, str)
        )
        yield make_config(
            tmp_path / "ws",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            provider=case.name,
            toml=f'base_url = "{url}{case.suffix}"\n{options}[send]\nbackoff_seconds = 0.02\n'
            "backoff_max_seconds = 0.1\nconcurrency = 2\nbatch_size = 50\n",
            **case.env,
        )


def _import(config: Config, rows: list[tuple[str, str]]) -> None:
    path = config.workspace / "list.csv"
    _write(path, rows)
    import_csv(Store(connect(config.database_url)), path, "news")


def _send(config: Config) -> SendSummary:
    return asyncio.run(send_campaign(config, compiled(), list_name="news"))


def _ledger(config: Config) -> dict[str, tuple[str, str]]:
    with connect(config.database_url).connect() as c:
        rows = c.execute(select(deliveries.c.email, deliveries.c.status, deliveries.c.reason))
        return {email: (status, reason or "") for email, status, reason in rows}


def _counts(service: Service) -> Counter[str]:
    return Counter(parseaddr(copy.to)[1] for copy in service.delivered)


def test_odd_recipients_fail_alone_and_arrive_as_they_must(
    config: Config, case: Case, service: Service
) -> None:
    rows = odd_list()
    _import(config, rows)
    summary = _send(config)
    assert summary.status == "finished" and not summary.stopped
    ledger = _ledger(config)
    failed = {email for email, (status, _) in ledger.items() if status == "failed"}
    assert LOCAL in failed and LOCAL in ledger[LOCAL][1] and "SMTPUTF8" in ledger[LOCAL][1]
    refused = {f"odd{ODD_NAMES.index(name)}@example.org" for name in case.fails}
    assert failed == {LOCAL, *refused}
    for email in refused:
        assert email in ledger[email][1] and "template language" in ledger[email][1]
    expected = {email for email, _ in rows} - failed - {IDN} | {IDN_SENT}
    assert _counts(service) == Counter({email: 1 for email in expected})
    copies = {parseaddr(copy.to)[1]: copy for copy in service.delivered}
    for email, first in rows:
        copy = copies.get(IDN_SENT if email == IDN else email)
        if copy is None:
            continue
        shown = html.escape(first)
        if case.name == "brevo":
            shown = shown.replace("{", "&#123;")  # the same character, where Brevo cannot read it
        assert copy.subject == "News for you"
        assert f"Hello {first}\n" in copy.text, (email, copy.text[:80])
        assert f"<p>Hello {shown} (" in copy.html, (email, copy.html[:200])
        name = str(make_header(decode_header(parseaddr(copy.to)[0])))
        if case.name in ("sendgrid", "brevo"):
            assert "," not in name
        if case.name == "brevo" and len(first) > brevo.NAME_LIMIT:
            assert len(name) == brevo.NAME_LIMIT and name.endswith("\u2026")


def test_an_account_refusal_stops_the_send_with_everyone_pending(
    config: Config, case: Case, service: Service
) -> None:
    rows = [(f"reader{i}@example.org", f"Reader{i}") for i in range(120)]
    _import(config, rows)
    if case.refusal is None:
        service.state["rejects"]["*"] = "unsigned"
    else:
        service.then(*[case.refusal] * 20)
    with pytest.raises(ProviderError, match=case.words):
        _send(config)
    assert service.delivered == []
    assert {status for status, _ in _ledger(config).values()} == {"pending"}
    service.script.clear()  # the account is fixed
    service.state.get("rejects", {}).clear()
    summary = _send(config)
    assert summary.ok and summary.sent == len(rows)
    assert _counts(service) == Counter({email: 1 for email, _ in rows})


def test_mandrill_holding_messages_for_a_suspended_account_stops_the_send(tmp_path: Path) -> None:
    service = mandrill.mandrill(queued_reason="account-suspended")
    with serve(service) as url:
        config = make_config(
            tmp_path / "ws",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            provider="mandrill",
            toml=f'base_url = "{url}/api/1.0"\n[send]\nconcurrency = 2\n',
            MANDRILL_API_KEY=mandrill.KEY,
        )
        _import(config, [(f"reader{i}@example.org", "R") for i in range(50)])
        with pytest.raises(ProviderError, match="account-suspended"):
            _send(config)
    statuses = Counter(status for status, _ in _ledger(config).values())
    # Mandrill holds what it queued: neither sent nor sent again; everyone else still to go.
    assert 1 <= statuses["unknown"] <= 2 and statuses["pending"] == 50 - statuses["unknown"]
    assert service.delivered == []


def test_the_outbox_writes_the_idn_address_in_punycode_and_fails_the_non_ascii_one(
    tmp_path: Path,
) -> None:
    """This list crashed `campaign send` with UnicodeEncodeError and sent none of it."""
    config = make_config(tmp_path / "ws", f"sqlite:///{tmp_path / 'db.sqlite'}")
    rows = odd_list()
    _import(config, rows)
    summary = _send(config)
    assert summary.status == "finished" and summary.sent == len(rows) - 1
    status, reason = _ledger(config)[LOCAL]
    assert status == "failed" and LOCAL in reason and "SMTPUTF8" in reason
    files = list((config.workspace / "outbox" / "c1").glob("*.eml"))
    to = [line for f in files for line in f.read_bytes().split(b"\r\n") if line.startswith(b"To:")]
    assert len(files) == len(rows) - 1
    assert any(line.endswith(f"<{IDN_SENT}>".encode()) for line in to)


def test_postmark_sends_every_odd_name_as_it_is(tmp_path: Path) -> None:
    server = PostmarkServer(keep_payloads=True)
    with serve(server.app) as url:
        config = make_config(
            tmp_path / "ws",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            provider="postmark",
            toml=f'base_url = "{url}"\n',
        )
        rows = odd_list()
        _import(config, rows)
        summary = _send(config)
    assert summary.status == "finished" and summary.failed == 1
    assert _ledger(config)[LOCAL][0] == "failed"
    expected = {email for email, _ in rows} - {LOCAL, IDN} | {IDN_SENT}
    assert server.deliveries() == Counter({email: 1 for email in expected})
    texts = {parseaddr(m["To"])[1]: m["TextBody"] for batch in server.payloads for m in batch}
    for email, first in rows:
        if email != LOCAL:
            assert f"Hello {first}\n" in texts[IDN_SENT if email == IDN else email]
