"""`campaign mailbox` and `campaign dkim`: every setting documented; a mailbox that cannot be
reached, or no [mailbox] at all, is one clear line naming the host, never the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.dkim_signer import DKIMOptions
from campaign.errors import ConfigError
from campaign.mailbox.settings import PASSWORD_ENV, USERNAME_ENV, MailboxSettings
from tests.conftest import REPO, SECRET_KEY, run_cli
from tests.send.conftest import make_config
from tests.servers import free_port

DOC = (REPO / "README.md").read_text()


def test_every_setting_and_variable_is_documented() -> None:
    for setting in (
        *MailboxSettings.model_fields,
        *DKIMOptions.model_fields,
        "verp",
        "local_hostname",
    ):
        assert f"{setting} = " in DOC or f"# {setting} = " in DOC, setting
    for text in ("`campaign mailbox`", "`campaign dkim`", f"`{USERNAME_ENV}`", f"`{PASSWORD_ENV}`"):
        assert text in DOC, text


def test_an_unreachable_mailbox_or_none_configured_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ws"
    port = free_port()
    make_config(
        root, f"sqlite:///{tmp_path}/c.db", toml=f'[mailbox]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    (root / ".env").write_text(
        f"CAMPAIGN_SECRET_KEY={SECRET_KEY}\n{USERNAME_ENV}=bounces\n{PASSWORD_ENV}=hunter2-secret\n"
    )
    code, out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 1 and f"could not reach the mailbox at imap 127.0.0.1:{port}" in err
    assert "hunter2" not in out + err and "Traceback" not in err
    make_config(root, f"sqlite:///{tmp_path}/c.db")
    code, _out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
    assert code == 1 and "no [mailbox] section" in err


def test_folders_set_for_pop3_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """POP3 would read the inbox instead, and delete what it processed instead of keeping it."""
    assert MailboxSettings(host="h", protocol="pop3", folder="INBOX").protocol == "pop3"
    for setting in ('folder = "Bounces"', 'processed_folder = "Archive"'):
        root = tmp_path / "ws"
        with pytest.raises(ConfigError, match="POP3 has no folders"):
            make_config(
                root,
                f"sqlite:///{tmp_path}/c.db",
                toml=f'[mailbox]\nhost = "127.0.0.1"\nprotocol = "pop3"\n{setting}\n',
            )
        code, _out, err = run_cli(capsys, "--workspace", str(root), "mailbox")
        assert code == 1 and "POP3 has no folders" in err and "Traceback" not in err, err
