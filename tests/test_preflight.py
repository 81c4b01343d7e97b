"""Preflight: each check's message, file:line and exit code, and that nothing is sent.

A real provider here is Mailgun's double on loopback: every request it receives is kept,
so "nothing sent" is an empty list, not an assumption.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign.compile import build
from campaign.config import load_config
from campaign.db import connect
from campaign.preflight import is_example_host, preflight
from tests.conftest import REAL_BASE_URL, real_sender, run_cli
from tests.servers import mailgun, serve
from tests.servers.scripted import Service

SLUG = "2018-11-wsr-primer"
YAML = f"campaigns/{SLUG}/campaign.yaml"


@pytest.fixture
def service() -> Service:
    return mailgun.mailgun()


@pytest.fixture
def real(workspace: Path, service: Service) -> Iterator[Path]:
    """The example workspace sending through Mailgun's double, with real sender details
    and Ana on the list."""
    with serve(service) as url:
        real_sender(
            workspace,
            f'[provider]\nname = "mailgun"\ndomain = "{mailgun.DOMAIN}"\nbase_url = "{url}"\n',
        )
        with (workspace / ".env").open("a") as env:
            env.write(f"MAILGUN_API_KEY={mailgun.KEY}\n")
        (workspace / "ana.csv").write_text("email,first_name\nana@coloradohtc.org,Ana\n")
        from campaign.audience import Store
        from campaign.audience.importer import import_csv

        import_csv(
            Store.open(load_config(workspace)), workspace / "ana.csv", list_name="newsletter"
        )
        yield workspace


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def line_of(path: Path, start: str) -> int:
    return next(
        n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(start)
    )


def send(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--yes", *extra)
    assert "Traceback" not in out + err
    return code, out + err


COMMA_FROM = "Conseil Traite d'êtres humains, Colorado <newsletter@coloradohtc.org>"


def test_a_comma_in_a_from_name_in_campaign_yaml_stops_at_its_line(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = real / YAML
    edit(yaml, "layout: newsletter\n", f'from: "{COMMA_FROM}"\nlayout: newsletter\n')
    code, out = send(capsys)
    assert code == 1 and service.received == []
    assert f"{YAML}:{line_of(yaml, 'from:')}: error: from " in out
    assert "reads as 2 addresses: a comma in a name splits it" in out
    assert (
        """from: '"Conseil Traite d''êtres humains, Colorado" <newsletter@coloradohtc.org>'"""
        in out
    )
    # the suggested form is right: the campaign then sends, From intact
    edit(
        yaml,
        f'from: "{COMMA_FROM}"',
        """from: '"Conseil Traite d''êtres humains, Colorado" <newsletter@coloradohtc.org>'""",
    )
    assert send(capsys)[0] == 0
    (request,) = service.received
    assert request.field("from").endswith("<newsletter@coloradohtc.org>")


def test_a_comma_in_the_default_from_stops_at_its_campaign_toml_line(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = real / "campaign.toml"
    edit(
        toml,
        'from = "Colorado Human Trafficking Council <newsletter@coloradohtc.org>"',
        f'from = "{COMMA_FROM}"',
    )
    code, out = send(capsys)
    assert code == 1 and service.received == []
    assert f"campaign.toml:{line_of(toml, 'from =')}: error: from " in out
    assert (
        r'''from = "\"Conseil Traite d'êtres humains, Colorado\" <newsletter@coloradohtc.org>"'''
        in out
    )


def test_a_subject_block_with_its_line_break_stops_at_its_line(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = real / YAML
    edit(
        yaml,
        "subject: A Primer on Worker-Driven Social Responsibility\n",
        "subject: |\n  A Primer on Worker-Driven Social Responsibility\n",
    )
    code, out = send(capsys)
    assert code == 1 and service.received == []
    assert f"{YAML}:{line_of(yaml, 'subject:') + 1}: error: the subject holds a line break" in out


def test_a_preflight_of_a_frozen_build_finds_what_the_build_would(real: Path) -> None:
    """Preflight checks the Compiled itself (a schedule's frozen build, a build made elsewhere)."""
    config = load_config(real)
    compiled = build(config, SLUG).model_copy(
        update={"preheader": "two\nlines", "reply_to": "nobody"}
    )
    report = _run(
        preflight(config, compiled, real / "campaigns" / SLUG, engine=connect(config.database_url))
    )
    errors = [str(e) for e in report.errors]
    assert errors == [
        f"campaign.toml:{line_of(real / 'campaign.toml', 'reply_to')}: error: reply_to 'nobody' is "
        "not one address with a domain, such as: News <news@your-domain.org>",
        f"{YAML}:{line_of(real / YAML, 'preheader')}: error: the preheader holds a line break, "
        "which mail services refuse: write it on one line (a `|` or `>` block keeps its last "
        "line break)",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "https://127.0.0.2",
        "https://localhost",
        "https://[::1]:8443",
        "https://news.example.org",
        "https://example.com",
        "https://example.net",
        "https://news.test",
        "https://mail.invalid",
        "https://site.example",
        "https://app.localhost",
        f"http://{REAL_BASE_URL.removeprefix('https://')}",
    ],
)
def test_public_url_must_be_https_and_reachable_for_real_mail(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    toml = real / "campaign.toml"
    edit(toml, f'public_base_url = "{REAL_BASE_URL}"', f'public_base_url = "{url}"')
    code, out = send(capsys)
    assert code == 1 and service.received == []
    assert (
        f"campaign.toml:{line_of(toml, 'public_base_url')}: error: public_base_url {url} must be "
        "your site's https:// address" in out
    )


def test_example_hosts() -> None:
    for host in (
        "localhost",
        "127.9.9.9",
        "::1",
        "[::1]",
        "example.org",
        "x.example.com",
        "a.test",
        "test",
    ):
        assert is_example_host(host), host
    for host in ("coloradohtc.org", "example.org.uk", "notexample.com", "10.0.0.1", "testing.org"):
        assert not is_example_host(host), host


def test_placeholder_organisation_and_sender_stop_a_real_send(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """A campaign.toml with only [provider] (and a public URL): every placeholder is an error."""
    toml = real / "campaign.toml"
    provider = toml.read_text().split("[provider]", 1)[1].split("\n[", 1)[0]
    toml.write_text(f'public_base_url = "{REAL_BASE_URL}"\n\n[provider]{provider}\n')
    code, out = send(capsys)
    assert code == 1 and service.received == []
    assert (
        "campaign.toml: error: from 'Example Organisation <newsletter@example.org>' is an example address"
        in out
    )
    assert (
        "campaign.toml: error: [organisation] name is the placeholder 'Example Organisation'" in out
    )
    assert (
        "campaign.toml: error: [organisation] address is the placeholder '1 Example Street, Springfield'"
        in out
    )
    assert "preflight: 3 errors" in out


def test_the_outbox_sends_the_demo_with_warnings(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The repository's own campaign.toml (news.example.org, the outbox) still works."""
    run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")
    code, out = send(capsys)
    assert code == 0, out
    assert (
        "warning: from 'Colorado Human Trafficking Council <newsletter@news.example.org>' is an example address (fine for the outbox; a real provider refuses it)"
        in out
    )
    assert len(list((workspace / "outbox" / SLUG).glob("*.eml"))) == 5


def test_dry_run_test_send_and_schedule_run_the_same_checks(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        real / "campaign.toml",
        f'public_base_url = "{REAL_BASE_URL}"',
        'public_base_url = "http://127.0.0.1:8000"',
    )
    for extra in (["--dry-run"], ["--at", "2099-01-01 09:00"]):
        code, out = send(capsys, *extra)
        assert code == 1 and "error: public_base_url" in out, extra
    code, out, err = run_cli(capsys, "send", SLUG, "--test", "me@coloradohtc.org")
    assert code == 1 and "error: public_base_url" in out + err
    assert service.received == []
    from campaign.schedule import find_schedule

    assert find_schedule(connect(load_config(real).database_url), SLUG) is None


def test_the_confirmation_shows_who_sends_and_where_links_go(
    real: Path,
    service: Service,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("typer.confirm", lambda question, default: asked.append(question) or False)
    code, out, _ = run_cli(capsys, "send", SLUG, "--list", "newsletter")
    assert code == 1 and asked == ["Send now?"] and service.received == []
    for line in (
        "from:     Colorado Human Trafficking Council <newsletter@coloradohtc.org>",
        "reply-to: chtc@coloradohtc.org",
        f"links:    {REAL_BASE_URL}",
        "provider: mailgun",
        "to:       list newsletter, 1 recipients",
    ):
        assert line in out


def images_at(names: set[str]) -> Starlette:
    """A bucket holding `names` under /bucket/; it answers HEAD as S3 does."""

    async def image(request: Request) -> Response:
        found = request.path_params["name"] in names
        return Response(
            b"" if found else b"no such key", 200 if found else 404, media_type="image/png"
        )

    return Starlette(routes=[Route("/bucket/{name}", image)])


def test_images_at_assets_base_url_are_checked_before_sending(
    real: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(real)
    names = {a.name for a in build(config, SLUG).assets}
    first = sorted(names)[0]
    with serve(images_at(names - {first})) as bucket:
        (real / "campaign.toml").write_text(
            (real / "campaign.toml").read_text() + f'\n[assets]\nbase_url = "{bucket}/bucket/"\n'
        )
        code, out = send(capsys)
        assert code == 1 and service.received == []
        assert f"error: 1 of {len(names)} images do not answer at {bucket}/bucket: {first}" in out
        where = len((real / "campaign.toml").read_text().splitlines())  # [assets] base_url, last
        assert f"campaign.toml:{where}: error: 1 of" in out
    with serve(images_at(names)) as bucket:
        toml = real / "campaign.toml"
        toml.write_text(
            toml.read_text().rsplit("base_url", 1)[0] + f'base_url = "{bucket}/bucket/"\n'
        )
        code, out = send(capsys)
        assert code == 0, out
        assert f"ok: {len(names)} images answer at {bucket}/bucket" in out
    html = service.received[0].field("html")
    assert f'src="{bucket}/bucket/{first}"' in html


def test_an_image_gone_since_the_build_is_an_error(real: Path) -> None:
    config = load_config(real)
    compiled = build(config, SLUG)
    own = next(a for a in compiled.assets if Path(a.path).is_relative_to(real))
    Path(own.path).unlink()
    report = _run(preflight(config, compiled, None, engine=connect(config.database_url)))
    assert [str(e) for e in report.errors] == [
        f"{own.source}: error: {own.source} changed or vanished since the build: build again"
    ]


def _run(coroutine):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coroutine)


def test_the_build_reports_a_comma_from_and_a_subject_block_too(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = workspace / YAML
    edit(yaml, "layout: newsletter\n", f'from: "{COMMA_FROM}"\nlayout: newsletter\n')
    edit(yaml, "preheader: ", "preheader: |\n  ")
    code, out, err = run_cli(capsys, "build", SLUG)
    assert code == 1 and not (workspace / "site").exists()
    assert f"{YAML}:{line_of(yaml, 'from:')}: error: from " in err
    assert (
        f"{YAML}:{line_of(yaml, 'preheader:') + 1}: error: the preheader holds a line break" in err
    )
