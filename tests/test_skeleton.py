"""The skeleton: settings, databases, CLI error handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from campaign.config import load_config
from campaign.db import connect
from campaign.errors import ConfigError


def test_config_defaults_without_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config.provider.name == "outbox"
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'campaign.db'}"


def test_config_names_file_on_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text('timezone = "UTC"\n[organisation\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert "campaign.toml" in str(info.value) and "line 2" in str(info.value)


def test_config_rejects_unknown_zone_and_field(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text('timezone = "Mars/Olympus"\ncolour = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert "Mars/Olympus" in str(info.value) and "colour" in str(info.value)


def test_secret_from_dotenv_and_missing_secret_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CAMPAIGN_SECRET_KEY=abc\n")
    assert load_config(tmp_path, environ={}).secret_key == "abc"
    with pytest.raises(ConfigError, match="POSTMARK_SERVER_TOKEN"):
        load_config(tmp_path, environ={}).secret("POSTMARK_SERVER_TOKEN", "postmark")


def test_database_migrates_on_first_use(db_url: str) -> None:
    engine = connect(db_url)
    assert "alembic_version" in inspect(engine).get_table_names()


def test_unreachable_database_is_a_clear_error_without_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        connect("postgresql://someone:hunter2@127.0.0.1:1/nowhere")
    message = str(info.value)
    assert "cannot open the database" in message and "hunter2" not in message and "***" in message
    with pytest.raises(ConfigError, match="not a database URL"):
        connect("nonsense://x")
    with pytest.raises(ConfigError, match="cannot open the database"):
        connect(f"sqlite:///{tmp_path}/missing-folder/x.db")
