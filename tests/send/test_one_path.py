"""Every provider goes through one path: preflight, the dry run, the confirmation.

`--dry-run` with each provider, Mailchimp included, sends nothing to the service's double
on loopback (every request reaching it is counted); a real Mailchimp send asks first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from starlette.types import ASGIApp, Receive, Scope, Send

from campaign.config import load_config
from tests.conftest import real_sender, run_cli
from tests.servers import (
    brevo,
    free_port,
    mailchimp,
    mailgun,
    mandrill,
    postmark,
    resend,
    sendgrid,
    serve,
    ses,
)

SLUG = "2018-11-wsr-primer"


class Counted:
    """An ASGI app that counts the HTTP requests reaching the service behind it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@dataclass
class HTTPCase:
    name: str
    app: Callable[[], ASGIApp]
    options: dict[str, str]
    env: dict[str, str]
    base_path: str = ""


HTTP_CASES = [
    HTTPCase(
        "postmark",
        lambda: postmark.PostmarkServer().app,
        {},
        {"POSTMARK_SERVER_TOKEN": postmark.TOKEN},
    ),
    HTTPCase(
        "mailgun", mailgun.mailgun, {"domain": mailgun.DOMAIN}, {"MAILGUN_API_KEY": mailgun.KEY}
    ),
    HTTPCase("sendgrid", sendgrid.sendgrid, {}, {"SENDGRID_API_KEY": sendgrid.KEY}),
    HTTPCase(
        "ses",
        ses.ses,
        {},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
    ),
    HTTPCase("resend", resend.resend, {}, {"RESEND_API_KEY": resend.KEY}),
    HTTPCase("brevo", brevo.brevo, {}, {"BREVO_API_KEY": brevo.KEY}),
    HTTPCase("mandrill", mandrill.mandrill, {}, {"MANDRILL_API_KEY": mandrill.KEY}),
    HTTPCase(
        "mailchimp",
        mailchimp.mailchimp,
        {"audience_id": mailchimp.AUDIENCE},
        {"MAILCHIMP_API_KEY": mailchimp.KEY},
        "/3.0",
    ),
]


def configure(workspace: Path, name: str, options: dict[str, Any], env: dict[str, str]) -> None:
    block = f'[provider]\nname = "{name}"\n' + "".join(
        f"{k} = {v if isinstance(v, int) else repr(str(v)).replace(chr(39), chr(34))}\n"
        for k, v in options.items()
    )
    real_sender(workspace, block)
    with (workspace / ".env").open("a") as file:
        file.write("".join(f"{k}={v}\n" for k, v in env.items()))


@pytest.fixture
def listed(workspace: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert (
        run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")[
            0
        ]
        == 0
    )
    return workspace


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda c: c.name)
def test_dry_run_sends_nothing(
    listed: Path, capsys: pytest.CaptureFixture[str], case: HTTPCase
) -> None:
    counted = Counted(case.app())
    with serve(counted) as url:
        configure(listed, case.name, {**case.options, "base_url": url + case.base_path}, case.env)
        code, out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--dry-run")
    assert code == 0, out + err
    assert "preflight: ok" in err and "nothing sent" in out
    assert counted.requests == []


class Recorder:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def test_dry_run_sends_nothing_over_smtp(
    listed: Path, capsys: pytest.CaptureFixture[str], smtp_server: tuple[Recorder, int]
) -> None:
    recorder, port = smtp_server
    configure(listed, "smtp", {"host": "127.0.0.1", "port": port, "security": "none"}, {})
    code, out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--dry-run")
    assert code == 0, out + err
    assert "nothing sent" in out and recorder.received == []
    # and the same path sends for real
    assert run_cli(capsys, "send", SLUG, "--list", "newsletter", "--yes")[0] == 0
    assert len(recorder.received) == 5


def test_dry_run_sends_nothing_through_the_outbox(
    listed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--dry-run")
    assert code == 0 and "nothing sent" in out
    assert not (listed / "outbox").exists()


@pytest.fixture
def mailchimp_service(workspace: Path) -> Iterator[tuple[Counted, Any]]:
    service = mailchimp.mailchimp()
    counted = Counted(service)
    with serve(counted) as url:
        configure(
            workspace,
            "mailchimp",
            {"audience_id": mailchimp.AUDIENCE, "base_url": url + "/3.0"},
            {"MAILCHIMP_API_KEY": mailchimp.KEY},
        )
        yield counted, service


def test_a_real_mailchimp_send_asks_unless_yes(
    mailchimp_service: tuple[Counted, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted, service = mailchimp_service
    code, out, err = run_cli(capsys, "send", SLUG)
    assert code == 1 and "no terminal to confirm on" in err and counted.requests == []
    asked: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("typer.confirm", lambda question, default: asked.append(question) or False)
    code, out, _ = run_cli(capsys, "send", SLUG)
    assert code == 1 and asked == ["Send now?"] and counted.requests == []
    assert f"to:       Mailchimp audience {mailchimp.AUDIENCE}" in out
    assert "from:     Colorado Human Trafficking Council <newsletter@coloradohtc.org>" in out
    code, out, _ = run_cli(capsys, "send", SLUG, "--yes")
    assert code == 0 and "sent to the audience" in out
    assert counted.requests[0] == "POST /3.0/campaigns"
    assert counted.requests[-1].endswith("/actions/send")


def test_mailchimp_test_send_and_schedule_go_through_preflight(
    mailchimp_service: tuple[Counted, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    counted, _ = mailchimp_service
    toml = load_config(Path.cwd()).workspace / "campaign.toml"
    toml.write_text(
        toml.read_text().replace("https://news.coloradohtc.org", "http://localhost:8000")
    )
    for args in (
        ["--test", "me@coloradohtc.org"],
        ["--at", "2099-01-01 09:00", "--yes"],
        ["--yes"],
    ):
        code, _, err = run_cli(capsys, "send", SLUG, *args)
        assert code == 1 and "error: public_base_url" in err, args
    assert counted.requests == []


def test_a_mailchimp_test_send_goes_at_once_and_a_dry_one_not_at_all(
    mailchimp_service: tuple[Counted, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    counted, _ = mailchimp_service
    code, out, _ = run_cli(capsys, "send", SLUG, "--dry-run", "--test", "me@coloradohtc.org")
    assert code == 0 and "nothing sent" in out and counted.requests == []
    code, out, _ = run_cli(capsys, "send", SLUG, "--test", "me@coloradohtc.org")
    assert code == 0 and "test sent to me@coloradohtc.org" in out
    assert counted.requests[-1].endswith("/actions/test")
