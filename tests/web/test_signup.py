"""The hosted signup form, double opt-in, consent records and abuse limits, over HTTP on both
databases; the confirmation email lands in the outbox like any message."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from campaign.audience import Store
from campaign.audience.tables import utcnow
from campaign.config import Config
from campaign.db import connect
from campaign.signup import flow
from campaign.signup.consent import consent_records
from campaign.signup.guard import FormTokens
from campaign.signup.snippet import form_snippet
from campaign.signup.tables import consents, signups
from campaign.web.app import create_app
from tests.conftest import run_cli
from tests.web.conftest import BASE_URL, make_config

SIGNUP = """
[signup]
min_fill_seconds = {min_fill}
per_ip_per_hour = 20
{extra}

[lists.newsletter]
description = "Monthly news from the council."
topics = ["events", "research"]
fields = {{ city = "Your city" }}

[lists.alerts]
double_opt_in = false
welcome = "2018-11-wsr-primer"
consent = "Yes, send me alerts."
"""
CONSENT = (
    "I agree to receive emails from Colorado Human Trafficking Council on this list. "
    "I can unsubscribe at any time with the link in every email."
)


def signup_config(
    workspace: Path, db_url: str, min_fill: float = 0, extra: str = "", **env: str
) -> Config:
    with (workspace / "campaign.toml").open("a") as toml:
        toml.write(SIGNUP.format(min_fill=min_fill, extra=extra))
    return make_config(workspace, db_url, **env)


@pytest.fixture
def config(workspace: Path, db_url: str) -> Config:
    return signup_config(workspace, db_url)


def confirmations(workspace: Path) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((workspace / "outbox" / "signup").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found.append(message)
    return found


def confirm_path(message: email.message.EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"{re.escape(BASE_URL)}(/confirm/\S+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def form(config: Config, list_name: str = "newsletter", **values: Any) -> dict[str, Any]:
    return {"started": FormTokens(config.secret_key).hosted(list_name), "website": "", **values}


def mailable(store: Store, list_name: str = "newsletter") -> list[str]:
    return [r.email for r in store.recipients(list_name)]


async def test_double_opt_in_from_form_to_audience(
    client: httpx.AsyncClient, config: Config, store: Store, workspace: Path
) -> None:
    page = await client.get("/subscribe/newsletter")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    for text in ("Subscribe to newsletter", "Monthly news", "Your city", 'value="events"', CONSENT):
        assert text in page.text
    assert 'name="website"' in page.text and '<html lang="en">' in page.text
    started = re.search(r'name="started" value="([^"]+)"', page.text)
    assert started
    answer = await client.post(
        "/subscribe/newsletter",
        data={
            "email": "Carla@Example.org",
            "name": "Carla",
            "city": "Pueblo",
            "topic": ["events", "not-offered"],
            "started": started.group(1),
            "website": "",
        },
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [message] = confirmations(workspace)
    assert message["To"] == "Carla <Carla@example.org>"
    assert store.find("carla@example.org") is None and mailable(store) == []

    path = confirm_path(message)
    shown = await client.get(path)  # what a link scanner does: nothing changes
    assert shown.status_code == 200 and "Confirm my subscription" in shown.text
    assert store.find("carla@example.org") is None and mailable(store) == []

    confirmed = await client.post(path)
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    assert mailable(store) == ["Carla@example.org"]
    carla = store.find("carla@example.org")
    assert carla is not None
    assert carla.topics == {"events"} and carla.fields == {"city": "Pueblo"}
    records = consent_records(store.engine, "carla@example.org")
    assert [(c.method, c.list_name, c.text) for c in records] == [
        ("form", "newsletter", CONSENT),
        ("confirmation", "newsletter", CONSENT),
    ]
    assert all(c.ip_hash and "127.0.0.1" not in c.ip_hash for c in records)
    again = await client.post(path)
    assert again.status_code == 400 and "does not work" in again.text
    assert len(consent_records(store.engine, "carla@example.org")) == 2


async def test_a_value_longer_than_its_field_is_refused_by_name_not_cut(
    client: httpx.AsyncClient, config: Config, workspace: Path
) -> None:
    """Past the fields' maxlength (a hand-made request, or the JSON API): a form error naming
    the field by its label, nothing stored or mailed; at the limit it goes through whole."""
    page = await client.get("/subscribe/newsletter")
    assert 'name="name" value="" maxlength="100"' in page.text
    long_name = await client.post(
        "/subscribe/newsletter", data=form(config, email="kim@example.org", name="K" * 101)
    )
    assert long_name.status_code == 400
    assert "“Name (optional)” is 101 characters long; at most 100 fit." in long_name.text
    long_city = await client.post(
        "/subscribe/newsletter", json=form(config, email="kim@example.org", city="C" * 201)
    )
    assert long_city.status_code == 400
    assert long_city.json()["error"] == "“Your city” is 201 characters long; at most 200 fit."
    assert confirmations(workspace) == []
    fits = await client.post(
        "/subscribe/newsletter", data=form(config, email="kim@example.org", name="K" * 100)
    )
    assert fits.status_code == 200 and len(confirmations(workspace)) == 1
    with connect(config.database_url).connect() as connection:
        assert connection.execute(select(signups.c.name)).scalar_one() == "K" * 100


async def test_the_answer_is_the_same_whatever_the_address(
    client: httpx.AsyncClient, config: Config, store: Store
) -> None:
    store.subscribe("member@example.org", list_name="newsletter", source="test")
    store.subscribe("gone@example.org", list_name="newsletter", source="test")
    store.unsubscribe("gone@example.org", source="test")
    store.record_bounce("bounced@example.org", hard=True, source="test")
    bodies = set()
    for address in (
        "new@example.org",
        "member@example.org",
        "gone@example.org",
        "bounced@example.org",
    ):
        answer = await client.post("/subscribe/newsletter", data=form(config, email=address))
        assert answer.status_code == 200
        bodies.add(answer.text)
    assert len(bodies) == 1
    json = await client.post("/subscribe/newsletter", json=form(config, email="json@example.org"))
    assert json.status_code == 200 and json.json()["ok"] is True
    bad = await client.post("/subscribe/newsletter", json=form(config, email="not an address"))
    assert bad.status_code == 400 and "valid email" in bad.json()["error"]
    assert (await client.get("/subscribe/board")).status_code == 404


async def test_coming_back_only_through_a_confirmed_signup(
    client: httpx.AsyncClient, config: Config, store: Store, workspace: Path
) -> None:
    store.subscribe("dee@example.org", list_name="alerts", source="test")
    store.unsubscribe("dee@example.org", source="test")
    # alerts is single opt-in, yet someone who left must confirm by email.
    await client.post("/subscribe/alerts", data=form(config, "alerts", email="dee@example.org"))
    assert mailable(store, "alerts") == []
    [message] = confirmations(workspace)
    await client.post(confirm_path(message))
    assert mailable(store, "alerts") == ["dee@example.org"]
    history = [(e["kind"], e["source"]) for e in store.history("dee@example.org")]
    assert history[-1] == ("resubscribed", "signup confirmed")
    # A new address on a single opt-in list is subscribed at once, its consent recorded.
    await client.post("/subscribe/alerts", data=form(config, "alerts", email="eve@example.org"))
    assert "eve@example.org" in mailable(store, "alerts") and len(confirmations(workspace)) == 1
    [consent] = consent_records(store.engine, "eve@example.org")
    assert (consent.method, consent.text) == ("form", "Yes, send me alerts.")
    # Both got the list's welcome campaign, with their own links.
    welcomed = [p.read_text() for p in (workspace / "outbox" / "2018-11-wsr-primer").glob("*.eml")]
    assert sorted(m.split("\nTo: ", 1)[1].split("\n", 1)[0] for m in welcomed) == [
        "dee@example.org",
        "eve@example.org",
    ]


async def test_resend_at_most_hourly_and_purge(
    client: httpx.AsyncClient, config: Config, store: Store, workspace: Path
) -> None:
    for _ in range(3):
        await client.post("/subscribe/newsletter", data=form(config, email="fay@example.org"))
    assert len(confirmations(workspace)) == 1
    signup = flow.Signup("newsletter", "fay@example.org", CONSENT, "x")
    later = utcnow() + timedelta(minutes=61)
    assert flow.pending(store.engine, signup, later) is not None
    assert flow.pending(store.engine, signup, later) is None
    # Signing up again eight days on: its link works a week from then.
    token = flow.pending(store.engine, signup, utcnow() + timedelta(days=8))
    assert token is not None
    week = timedelta(days=7)
    confirmed = flow.confirm(
        store.engine, token, "y", max_age=week, now=utcnow() + timedelta(days=14)
    )
    assert confirmed is not None and mailable(store) == ["fay@example.org"]
    # Unconfirmed signups go after purge_unconfirmed_days, and their links with them.
    other = flow.Signup("newsletter", "gus@example.org", CONSENT, "x")
    token = flow.pending(store.engine, other)
    assert token is not None
    assert flow.purge(store.engine, timedelta(days=14), utcnow() + timedelta(days=13)) == 0
    assert flow.purge(store.engine, timedelta(days=14), utcnow() + timedelta(days=15)) == 1
    assert flow.find_pending(store.engine, token) is None
    assert flow.confirm(store.engine, token, "y", max_age=week) is None


async def test_honeypot_and_too_fast_send_nothing(
    workspace: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = signup_config(workspace, db_url, min_fill=60)
    app = create_app(config)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        honey = await client.post(
            "/subscribe/newsletter", data={**form(config, email="bot@example.org"), "website": "x"}
        )
        fast = await client.post(
            "/subscribe/newsletter", data=form(config, email="bot@example.org")
        )
        forged = await client.post(
            "/subscribe/newsletter", data={"email": "bot@example.org", "started": "forged"}
        )
        assert {honey.status_code, fast.status_code, forged.status_code} == {200}
        assert honey.text == fast.text == forged.text
        assert confirmations(workspace) == []
        # Filled in over a minute: a person.
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 61)
        slow = form(config, email="person@example.org")
        monkeypatch.undo()
        await client.post("/subscribe/newsletter", data=slow)
        assert len(confirmations(workspace)) == 1
    await app.state.site.aclose()


async def test_a_flood_from_one_ip_is_limited(
    client: httpx.AsyncClient, config: Config, workspace: Path
) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/subscribe/newsletter", data=form(config, email=f"f{n}@example.org"))
            for n in range(100)
        )
    )
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 20 and codes.count(429) == 80
    assert len(confirmations(workspace)) == 20


def test_the_limit_holds_under_concurrency(config: Config) -> None:
    engine = connect(config.database_url)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: flow.within_limit(engine, "ip:x", 20), range(100)))
    assert results.count(True) == 20
    later = utcnow() + timedelta(minutes=61)
    assert flow.within_limit(engine, "ip:x", 20, later)


def test_form_snippet(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "form", "newsletter")
    assert code == 0, err
    assert f'action="{BASE_URL}/subscribe/newsletter"' in out and "<script" not in out
    assert 'name="website"' in out and "Your city" in out
    code, _, err = run_cli(capsys, "form", "board")
    assert code == 1 and "lists with a form: alerts, newsletter" in err
    code, out, err = run_cli(capsys, "signups", "purge")
    assert code == 0 and "0 unconfirmed signups older than 14 days deleted" in out, err


async def test_the_snippet_posts_without_a_render_time(
    client: httpx.AsyncClient, config: Config, workspace: Path
) -> None:
    started = FormTokens(config.secret_key).snippet("newsletter")
    answer = await client.post(
        "/subscribe/newsletter",
        data={"email": "gil@example.org", "started": started, "website": ""},
        headers={"Origin": "https://www.example.org"},
    )
    assert answer.status_code == 200 and len(confirmations(workspace)) == 1
    other = FormTokens(config.secret_key).snippet("alerts")
    await client.post("/subscribe/newsletter", data={"email": "hal@example.org", "started": other})
    assert len(confirmations(workspace)) == 1


SOLVED = "P1_eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9." + "x" * 1500
"""An hCaptcha answer as long as real ones (well past 1,000 characters): it must reach the
verifier whole."""


async def test_captcha_verification_hook(workspace: Path, db_url: str) -> None:
    from tests.servers import serve

    seen: list[dict[str, str]] = []

    async def verify(request: Request) -> JSONResponse:
        data = dict(await request.form())
        seen.append({k: str(v) for k, v in data.items()})
        return JSONResponse({"success": data.get("response") == SOLVED})

    with serve(Starlette(routes=[Route("/siteverify", verify, methods=["POST"])])) as url:
        config = signup_config(
            workspace,
            db_url,
            extra=f'captcha = "hcaptcha"\ncaptcha_sitekey = "site-1"\ncaptcha_verify_url = "{url}/siteverify"',
            CAMPAIGN_CAPTCHA_SECRET="captcha-secret",
        )
        app = create_app(config)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as client:
            page = await client.get("/subscribe/newsletter")
            assert 'data-sitekey="site-1"' in page.text
            snippet = form_snippet(config, "newsletter")
            assert 'data-sitekey="site-1"' in snippet and "js.hcaptcha.com" in snippet
            assert "https://js.hcaptcha.com" in page.headers["content-security-policy"]
            wrong = await client.post(
                "/subscribe/newsletter",
                data=form(config, email="ian@example.org", **{"h-captcha-response": "nope"}),
            )
            assert wrong.status_code == 400 and confirmations(workspace) == []
            right = await client.post(
                "/subscribe/newsletter",
                data=form(config, email="ian@example.org", **{"h-captcha-response": SOLVED}),
            )
            assert right.status_code == 200 and len(confirmations(workspace)) == 1
        await app.state.site.aclose()
    assert seen[-1] == {"secret": "captcha-secret", "response": SOLVED, "sitekey": "site-1"}


def test_every_signup_setting_is_documented() -> None:
    from campaign.signup.settings import ListSettings, SignupSettings
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for setting in [
        *SignupSettings.model_fields,
        *ListSettings.model_fields,
        "CAMPAIGN_CAPTCHA_SECRET",
    ]:
        assert f"{setting}" in readme, setting


def test_an_unknown_language_is_a_config_error(workspace: Path, db_url: str) -> None:
    from campaign.errors import ConfigError

    toml = workspace / "campaign.toml"
    toml.write_text('language = "xx"\n' + toml.read_text())
    with pytest.raises(
        ConfigError, match="no signup texts in 'xx' \\(languages: en, es, fr, de\\)"
    ):
        make_config(workspace, db_url)


async def test_consents_shown_and_exported(
    client: httpx.AsyncClient,
    config: Config,
    store: Store,
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from campaign.audience.importer import import_csv

    import_csv(store, workspace / "samples" / "subscribers.csv", "newsletter")
    [imported] = consent_records(store.engine, "ana.lopez@example.org")
    assert (imported.method, imported.text, imported.ip_hash) == (
        "import",
        "import subscribers.csv",
        None,
    )
    await client.post("/subscribe/newsletter", data=form(config, email="ana.lopez@example.org"))
    await client.post(confirm_path(confirmations(workspace)[0]))
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", config.database_url)
    code, out, err = run_cli(capsys, "subscribers", "show", "ana.lopez@example.org")
    assert code == 0, err
    shown = " ".join(out.split())
    assert "consent" in shown and "import subscribers.csv" in shown and "confirmation" in shown
    out_file = workspace / "consents.csv"
    code, out, err = run_cli(
        capsys,
        "subscribers",
        "export",
        "--consents",
        "--list",
        "newsletter",
        "--out",
        str(out_file),
    )
    assert code == 0 and "consent records written" in out, err
    rows = out_file.read_text().splitlines()
    assert rows[0] == "email,list,method,when,consent_text,ip_hash"
    ana = [r for r in rows if r.startswith("ana.lopez@example.org,")]
    assert [r.split(",")[2] for r in ana] == ["import", "form", "confirmation"]
    assert len(rows) == 1 + 5 + 2


async def test_the_form_speaks_campaign_toml_s_language(workspace: Path, db_url: str) -> None:
    toml = workspace / "campaign.toml"
    toml.write_text('language = "es"\n' + toml.read_text())
    config = signup_config(workspace, db_url)
    app = create_app(config)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        page = await client.get("/subscribe/newsletter")
        assert '<html lang="es">' in page.text and "Suscríbase a newsletter" in page.text
        answer = await client.post(
            "/subscribe/newsletter", data=form(config, email="jo@example.org")
        )
        assert "Revise su bandeja de entrada" in answer.text
    await app.state.site.aclose()
    [message] = confirmations(workspace)
    assert message["Subject"] == "Confirme su suscripción a Colorado Human Trafficking Council"


async def test_erasure_takes_consents_and_pending_signups(
    client: httpx.AsyncClient, config: Config, store: Store, workspace: Path
) -> None:
    await client.post("/subscribe/newsletter", data=form(config, email="kim@example.org"))
    await client.post(confirm_path(confirmations(workspace)[0]))
    await client.post("/subscribe/alerts", data=form(config, "alerts", email="kim@example.org"))
    assert len(consent_records(store.engine, "kim@example.org")) == 3
    await client.post("/subscribe/newsletter", data=form(config, email="lee@example.org"))
    store.delete("kim@example.org")
    store.delete("lee@example.org")
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(consents)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(signups)).scalar() == 0
