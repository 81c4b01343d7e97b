"""Commands pay only for what they use: reading commands import neither the compiler, nor
the engine's HTTP client, nor alembic; the schema check is one query, migrations only when due."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from campaign.db import alembic_config, connect, normalise_url, schema_is_current
from campaign.migrations.heads import schema_heads
from tests.conftest import run_cli

HEAVY = ("mjml", "premailer", "alembic", "mako", "campaign.compile", "httpx")

PROBE = """
import gc, json, sys
from campaign.cli import main
try:
    main()  # as the `campaign` script runs it: the arguments from sys.argv
except SystemExit:
    pass
state = {"modules": sorted(sys.modules), "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()}
print(json.dumps(state), file=sys.stderr)
"""


def probe(workspace: Path, *args: str) -> dict[str, Any]:
    """What a whole `campaign ARGS` process imported, and its garbage collector's state
    at the end (its last stderr line)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    state: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return state


def imported_by(workspace: Path, *args: str) -> set[str]:
    """The modules a whole `campaign ARGS` process imported."""
    return set(probe(workspace, *args)["modules"])


def heavy(modules: set[str], names: Sequence[str] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in names))


@pytest.mark.parametrize(
    "args",
    [
        ("status", "2018-11-wsr-primer"),
        ("--help",),
        ("lists",),
        ("topics",),
        ("schedule",),
        ("subscribers", "list", "--help"),
    ],
)
def test_reading_commands_import_no_compiler_engine_or_alembic(
    workspace: Path, args: tuple[str, ...]
) -> None:
    connect(f"sqlite:///{workspace}/campaign.db")  # migrated: the command only checks
    modules = imported_by(workspace, *args)
    assert "campaign.cli" in modules
    assert heavy(modules) == []


SENDING = ("campaign.cli.send", "campaign.cli.schedule", "campaign.schedule", "campaign.assets")
"""What sending and scheduling need, and reading the ledger does not."""

CAMPAIGN_FILES = ("campaign.load", "yaml")
"""What reads campaign.yaml (finding campaigns only looks for the file)."""

UNREAD = ("email_validator", "sqlalchemy.dialects.postgresql")
"""What no reading command needs on SQLite: addresses are checked only as they come in, and
PostgreSQL's dialect only on PostgreSQL."""

IMPORTING = ("campaign.audience.importer", "campaign.audience.export", "rich.progress")
"""What `subscribers import` and `export` need, and listing does not."""


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (("status", "2018-11-wsr-primer"), (*SENDING, *CAMPAIGN_FILES, *IMPORTING)),
        (("report", "2018-11-wsr-primer"), (*SENDING, *CAMPAIGN_FILES, *IMPORTING)),
        (("lists",), (*SENDING, *CAMPAIGN_FILES, *IMPORTING)),
        (("topics",), (*SENDING, *CAMPAIGN_FILES, *IMPORTING)),
        (("subscribers", "list"), (*SENDING, *CAMPAIGN_FILES, *IMPORTING)),
        (("schedule",), ("campaign.cli.send", *CAMPAIGN_FILES, *IMPORTING)),
    ],
)
def test_reading_commands_import_only_what_they_read(
    workspace: Path, args: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    """Beyond the heavy parts above: nor what the other commands of their area need, nor
    typer's help renderer (Markdown, tracebacks, syntax highlighting)."""
    connect(f"sqlite:///{workspace}/campaign.db")
    modules = imported_by(workspace, *args)
    assert heavy(modules, (*absent, *UNREAD, "typer.rich_utils", "pygments", "markdown_it")) == []


def test_the_whole_process_freezes_what_start_up_imported(workspace: Path) -> None:
    """As the `campaign` script, the start-up's objects are frozen (no collection walks them
    again, nor the one at exit) and the collector runs again for the command itself."""
    connect(f"sqlite:///{workspace}/campaign.db")
    state = probe(workspace, "status", "2018-11-wsr-primer")
    assert state["collecting"] and state["frozen"] > 10_000


def test_in_process_calls_leave_the_collector_alone(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frozen = gc.get_freeze_count()
    assert run_cli(capsys, "lists")[0] == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_a_new_database_is_migrated_by_a_reading_command(workspace: Path) -> None:
    modules = imported_by(workspace, "status", "2018-11-wsr-primer")
    assert "alembic" in modules
    assert (workspace / "campaign.db").exists()
    assert heavy(imported_by(workspace, "status", "2018-11-wsr-primer")) == []


def test_heads_read_from_the_files_are_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert schema_heads() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_schema_check_sees_a_missing_or_older_schema(db_url: str) -> None:
    from alembic import command

    engine = create_engine(normalise_url(db_url))
    try:
        assert not schema_is_current(engine)  # empty: no alembic_version
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0001_audience")
        assert not schema_is_current(engine)  # older
        connect(db_url)
        assert schema_is_current(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM deliveries")).scalar() == 0
    finally:
        engine.dispose()


HELP_FROM_EVERY_MODULE = """
import sys
from importlib import import_module
from campaign.cli import COMMANDS
from campaign.cli.app import app
for module in sorted(set(COMMANDS.values())):
    import_module(f"campaign.cli.{module}")
app(sys.argv[1:], prog_name="campaign")
"""

QUICK_HELP = "import sys; from campaign.cli import main; main(sys.argv[1:])"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help"], {"COLUMNS": "100"}),
        (["--help"], {"COLUMNS": "60", "FORCE_COLOR": "1"}),
        (["-w", ".", "--help"], {"TERMINAL_WIDTH": "130"}),
        ([], {"COLUMNS": "90", "FORCE_COLOR": "1"}),
    ],
)
def test_help_is_the_one_typer_makes_from_every_module(
    args: list[str], env: dict[str, str]
) -> None:
    """`campaign --help` is drawn from campaign/cli/catalog.py, without typer or any command's
    module: character for character (colours too) the help typer makes from the real commands
    (a new command, or a changed docstring, needs its line in the catalog)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}

    def run(code: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env={**environ, **env},
            timeout=120,
        )
        assert done.stderr == ""
        return done.returncode, done.stdout

    quick = run(QUICK_HELP)
    assert "subscribers" in quick[1] and quick[0] == (0 if args else 2)
    assert quick == run(HELP_FROM_EVERY_MODULE)


@pytest.mark.parametrize("args", [("--help",), ()])
def test_help_imports_neither_typer_nor_the_settings(
    workspace: Path, args: tuple[str, ...]
) -> None:
    modules = imported_by(workspace, *args)
    assert "campaign.cli.catalog" in modules
    assert heavy(modules) == []
    assert not {"typer", "click", "pydantic", "sqlalchemy", "campaign.config"} & modules
    assert not any(m.startswith(("importlib.metadata", "typer.", "pygments")) for m in modules)


def test_a_command_after_help_in_one_process_is_the_real_one(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "lists" in out
    code, out, _ = run_cli(capsys, "lists")
    assert code == 0 and "Lists" not in out.splitlines()[0]
