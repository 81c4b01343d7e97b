"""Safe first use: many commands started at once on a new database all succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SECRET_KEY

COMMANDS = 12
COMMAND_LINES = (("lists",), ("subscribers", "list"), ("topics",))


def _campaign(*args: str) -> list[str]:
    """The command line of `campaign ARGS` with this interpreter's installed package."""
    return [sys.executable, "-m", "campaign", *args]


def test_commands_started_at_once_on_a_new_database_all_succeed(
    db_url: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "campaign.toml").write_text('[organisation]\nname = "Test"\n', encoding="utf-8")
    env = {
        **os.environ,
        "CAMPAIGN_WORKSPACE": str(workspace),
        "CAMPAIGN_DATABASE_URL": db_url,
        "CAMPAIGN_SECRET_KEY": SECRET_KEY,
    }
    processes = [
        subprocess.Popen(
            _campaign(*COMMAND_LINES[n % len(COMMAND_LINES)]),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(COMMANDS)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert "Traceback" not in err
        assert process.returncode == 0, err
