"""`campaign send` and `campaign status`: the example sent through the outbox to the sample list."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.cli import main
from campaign.config import load_config
from campaign.links import Links
from tests.conftest import SECRET_KEY

SLUG = "2018-11-wsr-primer"


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


@pytest.fixture
def sample(workspace: Path) -> Path:
    assert run("subscribers", "import", "samples/subscribers.csv", "--list", "newsletter") == 0
    return workspace


def test_example_through_outbox_parses_back_with_valid_links(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("send", SLUG, "--list", "newsletter", "--yes") == 0
    out = capsys.readouterr().out
    assert (
        "subject:  A Primer on Worker-Driven Social Responsibility" in out
        and "provider: outbox" in out
    )
    assert (
        f"{SLUG}: finished; 5 recipients: 5 sent, 0 failed, 0 unknown, 0 skipped, 0 pending" in out
    )
    assert "queueing: 5/5 recipients" in out and re.search(r"\n5/5 done, [\d,]+/s: 5 sent", out)
    config = load_config(sample)
    store = Store.open(config)
    links = Links(SECRET_KEY, config.public_base_url)
    files = sorted((sample / "outbox" / SLUG).glob("*.eml"))
    assert len(files) == 5
    seen = set()
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert parsed.get_content_type() == "multipart/alternative" and not parsed.defects
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
        to = parsed["To"].addresses[0].addr_spec
        subscriber = store.find(to)
        assert subscriber is not None
        seen.add(to)
        html = parsed.get_body(("html",)).get_content()
        text = parsed.get_body(("plain",)).get_content()
        found = re.findall(
            r"https://news\.example\.org/(forward|preferences|unsubscribe)/([\w.-]+)", html + text
        )
        assert {purpose for purpose, _ in found} == {"forward", "preferences", "unsubscribe"}
        for purpose, token in found:
            claims = links.verify(purpose, token)  # type: ignore[arg-type]
            assert (claims.subscriber, claims.campaign) == (subscriber.public_id, SLUG)
        assert f"https://news.example.org/archive/{SLUG}" in html
        one_click = re.fullmatch(
            r"<https://news\.example\.org/unsubscribe/([\w.-]+)>", parsed["List-Unsubscribe"]
        )
        assert (
            one_click
            and links.verify("unsubscribe", one_click.group(1)).subscriber == subscriber.public_id
        )
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["Message-ID"].endswith("@news.example.org>") and parsed["X-Campaign"] == SLUG
        assert parsed["From"].addresses[0].addr_spec == "newsletter@news.example.org"
        assert parsed["Reply-To"] == "chtc@example.org"
    assert len(seen) == 5
    # Again: resumes, sends nothing new.
    assert run("send", SLUG, "--list", "newsletter", "--yes") == 0
    assert len(list((sample / "outbox" / SLUG).glob("*.eml"))) == 5
    assert run("status", SLUG) == 0
    assert "5 sent" in capsys.readouterr().out


def test_without_yes_and_without_a_terminal_nothing_is_sent(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("send", SLUG, "--list", "newsletter") == 1
    assert "add --yes" in capsys.readouterr().err
    assert not (sample / "outbox").exists()


def test_test_and_dry_run_leave_no_trace(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("send", SLUG, "--dry-run", "--list", "newsletter") == 0
    assert "5 messages built" in capsys.readouterr().out and not (sample / "outbox").exists()
    assert run("send", SLUG, "--test", "me@example.org") == 0
    files = list((sample / "outbox" / SLUG).glob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "[TEST] A Primer on Worker-Driven Social Responsibility"
    assert run("status", SLUG) == 0
    assert "not sent yet" in capsys.readouterr().out
    assert run("send", SLUG, "--test", "not an address") == 1
    capsys.readouterr()
    assert run("send", SLUG, "--test", "jürgen@example.org", "--test", "me@exämple.org") == 1
    out = capsys.readouterr().out
    assert "test to jürgen@example.org: rejected: jürgen@example.org: outbox cannot" in out
    assert "test sent to me@exämple.org" in out


def test_clear_errors(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("send", SLUG) == 1
    assert "--list NAME" in capsys.readouterr().err
    assert run("send", SLUG, "--list", "nope", "--yes") == 1
    assert "nope" in capsys.readouterr().err
    (sample / ".env").unlink()
    assert run("send", SLUG, "--list", "newsletter", "--yes") == 1
    err = capsys.readouterr().err
    assert "CAMPAIGN_SECRET_KEY" in err and "Traceback" not in err


def test_dry_run_names_who_would_fail_and_the_send_fails_only_them(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = sample / "odd.csv"
    odd.write_text("email,first_name\njürgen@example.org,Jürgen\njuergen@exämple.org,Jürgen\n")
    assert run("subscribers", "import", str(odd), "--list", "newsletter") == 0
    capsys.readouterr()
    assert run("send", SLUG, "--dry-run", "--list", "newsletter") == 0
    out = capsys.readouterr().out
    assert "would fail: jürgen@example.org: outbox cannot deliver" in out
    assert "juergen@" not in out.split("would fail", 1)[1]
    assert run("send", SLUG, "--list", "newsletter", "--yes") == 1
    out = capsys.readouterr().out
    assert "6 sent, 1 failed" in out and "Traceback" not in out
