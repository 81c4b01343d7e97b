"""The CLI shell: commands load lazily, and every command is known to the loader."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from campaign.cli import COMMANDS, main, register
from campaign.cli.app import app


def test_every_registered_command_is_in_the_loader_table() -> None:
    register([])
    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)  # type: ignore[attr-defined]


def test_build_does_not_load_the_database_or_web_layers() -> None:
    code = (
        "import sys; from campaign.cli import register; register(['build', 'x']);"
        "print(sorted(m for m in ('sqlalchemy', 'starlette', 'campaign.send', 'campaign.audience') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_global_option_before_the_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main(["-w", str(tmp_path), "schema"])
    assert exit_info.value.code in (0, None)
    assert '"properties"' in capsys.readouterr().out
