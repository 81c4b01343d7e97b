"""The outbox: one complete .eml per message under outbox/<campaign>/, openable anywhere."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from campaign.config import load_config
from campaign.message import Message
from campaign.providers import Status, create
from campaign.providers.outbox import OutboxProvider


def message(n: int, raw: bytes | None = None) -> Message:
    return Message(
        send_id=f"sid{n}",
        campaign="c1",
        from_="Org <news@example.org>",
        to_email=f"u{n}@example.com",
        to_name="",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
        headers={"X-Campaign-Send-Id": f"sid{n}"},
        raw=raw,
    )


async def test_each_message_one_file(tmp_path: Path) -> None:
    outbox = OutboxProvider({"directory": str(tmp_path / "out")}, {})
    results = await outbox.send([message(1, raw=b"Subject: given\r\n\r\nbody\r\n"), message(2)])
    assert [r.status for r in results] == [Status.ACCEPTED, Status.ACCEPTED]
    first, second = tmp_path / "out" / "c1" / "sid1.eml", tmp_path / "out" / "c1" / "sid2.eml"
    assert results[0].provider_id == str(first)
    assert (
        first.read_bytes() == b"Subject: given\r\n\r\nbody\r\n"
    )  # the engine's bytes, as they are
    parsed = email.message_from_bytes(
        second.read_bytes(), policy=email.policy.default
    )  # built here when not given
    assert (
        parsed["To"] == "u2@example.com"
        and parsed.get_body(("html",)).get_content().strip() == "<p>Hi</p>"
    )
    assert not list((tmp_path / "out" / "c1").glob("*.part"))


async def test_unwritable_folder_is_retried(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file where the folder should be")
    results = await OutboxProvider({"directory": str(tmp_path / "out")}, {}).send([message(1)])
    assert results[0].status is Status.RETRY and results[0].reason.startswith("outbox: ")


def test_directory_is_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text('[provider]\nname = "outbox"\ndirectory = "mail/out"\n')
    provider = create(load_config(tmp_path, environ={}))
    assert (
        isinstance(provider, OutboxProvider)
        and provider.directory == tmp_path.resolve() / "mail" / "out"
    )
    (tmp_path / "campaign.toml").write_text('[provider]\nname = "outbox"\n')
    assert create(load_config(tmp_path, environ={})).directory == tmp_path.resolve() / "outbox"  # type: ignore[attr-defined]
