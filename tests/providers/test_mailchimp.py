"""Mailchimp Marketing against a Mailchimp double: create or update the campaign,
our content with Mailchimp's merge tags, the send checklist, test, send, schedule on
the quarter hour, problem details in full, configuration."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from campaign.compile import build
from campaign.compiled import Compiled
from campaign.config import Config, load_config
from campaign.errors import ConfigError, ProviderError, UserError
from campaign.placeholders import field, link
from campaign.providers import mailchimp as mc
from tests.servers import serve
from tests.servers.mailchimp import AUDIENCE, KEY, mailchimp
from tests.servers.scripted import Service

ENV = {"MAILCHIMP_API_KEY": KEY}


def config(tmp_path: Path, url: str, **extra: str) -> Config:
    options = {"audience_id": AUDIENCE, "base_url": url + "/3.0", **extra}
    (tmp_path / "campaign.toml").write_text(
        '[provider]\nname = "mailchimp"\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    )
    return load_config(tmp_path, environ=ENV)


def compiled(**changes: Any) -> Compiled:
    fields: dict[str, Any] = dict(
        slug="may-2024",
        subject="CHTC news, May 2024",
        preheader="Trafficking & labour: new guidance",
        from_="Colorado Human Trafficking Council <newsletter@news.example.org>",
        reply_to=None,
        layout="newsletter",
        html=(
            f'<div style="display:none">Trafficking &amp; labour: new guidance</div><p>Dear {field("first_name")} '
            f'{field("last_name")} of {field("county")},</p><a href="{link("view")}">View</a> '
            f'<a href="{link("forward")}">Forward</a> <a href="{link("preferences")}">Preferences</a> '
            f'<a href="{link("unsubscribe")}">Unsubscribe</a>'
        ),
        text=f"Dear {field('first_name')},\nUnsubscribe: {link('unsubscribe')}\n",
        placeholders=frozenset(),
        source_hash="x",
        built_at=datetime.now(UTC),
    )
    fields.update(changes)
    return Compiled(**fields)


async def run(
    cfg: Config, c: Compiled, *, test: list[str] | None = None, at: datetime | None = None
) -> str:
    return await mc.run(cfg, c, test_addresses=test, at=at)


def campaigns(service: Service) -> dict[str, dict[str, Any]]:
    return service.state["campaigns"]  # type: ignore[no-any-return]


async def test_send_creates_the_campaign_with_merge_tags_and_sends_it(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        line = await run(config(tmp_path, url), compiled())
    calls = [(r.method, r.path) for r in service.received]
    (campaign,) = campaigns(service).values()
    cid = campaign["id"]
    assert calls == [
        ("POST", "/3.0/campaigns"),
        ("PUT", f"/3.0/campaigns/{cid}/content"),
        ("GET", f"/3.0/campaigns/{cid}/send-checklist"),
        ("POST", f"/3.0/campaigns/{cid}/actions/send"),
    ]
    assert service.received[0].headers["authorization"].startswith("Basic ")
    assert service.received[0].json() == {
        "type": "regular",
        "recipients": {"list_id": AUDIENCE},
        "settings": {
            "subject_line": "CHTC news, May 2024",
            "preview_text": "Trafficking & labour: new guidance",
            "title": "may-2024",
            "from_name": "Colorado Human Trafficking Council",
            "reply_to": "newsletter@news.example.org",
        },
    }
    assert campaign["content"]["html"] == (
        '<div style="display:none">*|MC_PREVIEW_TEXT|*</div><p>Dear *|FNAME|* *|LNAME|* of *|COUNTY|*,</p>'
        '<a href="*|ARCHIVE|*">View</a> <a href="*|FORWARD|*">Forward</a> '
        '<a href="*|UPDATE_PROFILE|*">Preferences</a> <a href="*|UNSUB|*">Unsubscribe</a>'
    )
    assert campaign["content"]["plain_text"] == "Dear *|FNAME|*,\nUnsubscribe: *|UNSUB|*\n"
    assert campaign["status"] == "sending"
    assert (
        line
        == f"mailchimp: created campaign {cid} for may-2024 (audience {AUDIENCE}); sent to the audience"
    )
    assert json.loads((tmp_path / ".campaign" / "mailchimp.json").read_text()) == {"may-2024": cid}


async def test_the_built_example_gets_merge_tags_after_inlining(workspace: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        cfg = config(workspace, url)
        example = build(cfg, "2018-11-wsr-primer")
        await run(cfg, example, test=["editor@example.org"])
    (campaign,) = campaigns(service).values()
    content = campaign["content"]["html"]
    assert "{{{" not in content and "%7B" not in content
    for tag in ("*|UNSUB|*", "*|ARCHIVE|*", "*|UPDATE_PROFILE|*"):
        assert f'href="{tag}"' in content


async def test_a_rerun_updates_the_same_campaign(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        cfg = config(tmp_path, url)
        await run(cfg, compiled(), test=["editor@example.org"])
        line = await run(
            cfg, compiled(subject="CHTC news, May 2024 (fixed)"), test=["editor@example.org"]
        )
    (campaign,) = campaigns(service).values()
    assert campaign["settings"]["subject_line"] == "CHTC news, May 2024 (fixed)"
    assert campaign["tests"] == [["editor@example.org"]] * 2
    assert ("PATCH", f"/3.0/campaigns/{campaign['id']}") in [
        (r.method, r.path) for r in service.received
    ]
    assert line.startswith(f"mailchimp: updated campaign {campaign['id']}") and line.endswith(
        "test sent to editor@example.org"
    )


async def test_a_sent_campaign_is_not_sent_again(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        cfg = config(tmp_path, url)
        await run(cfg, compiled())
        with pytest.raises(UserError, match="already sending"):
            await run(cfg, compiled())
    assert len(campaigns(service)) == 1


async def test_a_campaign_deleted_in_mailchimp_is_created_again(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        cfg = config(tmp_path, url)
        await run(cfg, compiled(), test=["a@example.org"])
        campaigns(service).clear()
        line = await run(cfg, compiled(), test=["a@example.org"])
    assert "created" in line and len(campaigns(service)) == 1


async def test_schedule_rounds_up_to_the_quarter_hour_in_utc(tmp_path: Path) -> None:
    service = mailchimp()
    at = (
        (datetime.now(UTC) + timedelta(days=2))
        .replace(hour=9, minute=7, second=30)
        .astimezone(datetime.now().astimezone().tzinfo)
    )
    with serve(service) as url:
        cfg = config(tmp_path, url)
        line = await run(cfg, compiled(), at=at)
        again = await run(
            cfg, compiled(), at=at + timedelta(hours=1)
        )  # unschedules, updates, schedules
    body = [r for r in service.received if r.path.endswith("/actions/schedule")][0].json()
    assert body["schedule_time"] == at.astimezone(UTC).replace(minute=15, second=0).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert line.endswith(f"scheduled for {at.astimezone(UTC):%Y-%m-%d} 09:15 UTC")
    assert again.endswith("10:15 UTC") and any(
        r.path.endswith("/actions/unschedule") for r in service.received
    )


def test_quarter_hour() -> None:
    assert mc.quarter_hour(datetime(2024, 5, 1, 9, 0, tzinfo=UTC)) == datetime(
        2024, 5, 1, 9, 0, tzinfo=UTC
    )
    assert mc.quarter_hour(datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC)) == datetime(
        2024, 5, 1, 9, 15, tzinfo=UTC
    )
    assert mc.quarter_hour(datetime(2024, 5, 1, 23, 50, tzinfo=UTC)) == datetime(
        2024, 5, 2, 0, 0, tzinfo=UTC
    )


async def test_a_past_time_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        with pytest.raises(UserError, match="has passed"):
            await run(config(tmp_path, url), compiled(), at=datetime.now(UTC) - timedelta(hours=1))
    assert service.received == []


async def test_checklist_items_are_shown_and_nothing_is_sent(tmp_path: Path) -> None:
    service = mailchimp()
    with serve(service) as url:
        with pytest.raises(UserError) as info:
            await run(config(tmp_path, url), compiled(html="<p>No unsubscribe link</p>"))
    assert "not ready to send" in str(info.value)
    assert (
        "error: Unsubscribe link: Your campaign is missing the required *|UNSUB|* merge tag."
        in str(info.value)
    )
    assert not any("/actions/" in r.path for r in service.received)


async def test_problem_details_are_shown_in_full(tmp_path: Path) -> None:
    service = mailchimp(audience="other")
    with serve(service) as url:
        with pytest.raises(ProviderError) as info:
            await run(config(tmp_path, url), compiled())
    assert (
        "400 Invalid Resource; The resource submitted could not be validated.; "
        "recipients.list_id: Please provide a valid list id." in str(info.value)
    )


async def test_wrong_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    service = mailchimp(key="ffffffffffffffffffffffffffffffff-us6")
    with serve(service) as url:
        with pytest.raises(ProviderError, match="401 API Key Invalid") as info:
            await run(config(tmp_path, url), compiled())
    assert KEY not in str(info.value)


async def test_unreachable_mailchimp_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="did not answer"):
        await run(config(tmp_path, "http://127.0.0.1:9"), compiled())


async def test_a_different_reply_to_is_reported(tmp_path: Path) -> None:
    with serve(mailchimp()) as url:
        line = await run(
            config(tmp_path, url), compiled(reply_to="chtc@example.org"), test=["a@example.org"]
        )
    assert "reply-to chtc@example.org not used" in line


def test_data_centre_comes_from_the_key() -> None:
    assert mc.base_url_for("abc-us6") == "https://us6.api.mailchimp.com/3.0"
    with pytest.raises(ConfigError, match="data centre"):
        mc.base_url_for("abc")


async def test_configuration_errors(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text('[provider]\nname = "mailchimp"\n')
    with pytest.raises(ConfigError, match="audience_id"):
        await run(load_config(tmp_path, environ=ENV), compiled())
    (tmp_path / "campaign.toml").write_text('[provider]\nname = "mailchimp"\naudience_id = "x"\n')
    with pytest.raises(ConfigError, match="MAILCHIMP_API_KEY"):
        await run(load_config(tmp_path, environ={}), compiled())


def test_our_name_fields_map_to_the_audiences_fname_and_lname() -> None:
    text = "{{{field:first_name}}}|{{{field:last_name}}}|{{{field:name}}}|{{{field:email}}}"
    assert mc.with_merge_tags(text) == "*|FNAME|*|*|LNAME|*|*|FNAME|* *|LNAME|*|*|EMAIL|*"
