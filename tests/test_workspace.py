"""Starting a workspace (`campaign init`), its layouts, and commands run outside one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import COMMANDS, register
from campaign.cli.app import app
from campaign.compile import build
from campaign.config import load_config
from campaign.errors import UserError
from campaign.load import BUILTIN_LAYOUTS
from campaign.workspace import Organisation, check_from, check_public_url, init_workspace
from tests.conftest import run_cli

FLAGS = (
    "--organisation",
    "Friends of the Riverside Library",
    "--address",
    "4 Mill Lane, Riverside, RS1 2AB",
    "--public-url",
    "https://news.riverside-library.org/",
    "--from",
    "Riverside Library <news@riverside-library.org>",
)


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder, outside any workspace."""
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("CAMPAIGN_WORKSPACE", raising=False)
    monkeypatch.delenv("CAMPAIGN_DATABASE_URL", raising=False)
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_init_with_flags_makes_a_workspace_whose_first_campaign_builds(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "init", "news", *FLAGS)
    assert code == 0, err
    root = empty / "news"
    settings = tomllib.loads((root / "campaign.toml").read_text(encoding="utf-8"))
    assert settings["organisation"] == {
        "name": "Friends of the Riverside Library",
        "address": "4 Mill Lane, Riverside, RS1 2AB",
    }
    assert settings["public_base_url"] == "https://news.riverside-library.org"
    assert settings["defaults"]["from"] == "Riverside Library <news@riverside-library.org>"
    assert settings["provider"]["name"] == "outbox"
    env = (root / ".env").read_text(encoding="utf-8")
    key = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("CAMPAIGN_"))
    assert len(key) >= 40
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    ignored = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name in ("/campaign.db", "/campaign.db-wal", "/campaign.db-shm", ".env", "/site/"):
        assert name in ignored
    assert "/outbox/" in ignored
    assert list((root / "layouts").iterdir()) == []
    [first] = (root / "campaigns").iterdir()
    assert f"campaign build {first.name}" in out
    config = load_config(root, environ={})
    assert config.secret_key == key
    compiled = build(config, first.name)
    assert "4 Mill Lane, Riverside, RS1 2AB" in compiled.html
    assert not (root / "campaign.db").exists()


def test_init_refuses_an_existing_workspace(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (empty / "campaign.toml").write_text("# mine\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "init", *FLAGS)
    assert code == 1
    assert "already a workspace" in err
    assert _files(empty) == ["campaign.toml"]
    assert (empty / "campaign.toml").read_text(encoding="utf-8") == "# mine\n"


def test_init_keeps_what_a_repository_already_has(empty: Path) -> None:
    (empty / ".gitignore").write_text("node_modules/\n.env\n", encoding="utf-8")
    (empty / ".env").write_text("CAMPAIGN_SECRET_KEY=kept\n", encoding="utf-8")
    init_workspace(
        empty,
        Organisation("Org", "1 Road, Town", "https://news.org.net", "Org <n@org.net>"),
    )
    ignored = (empty / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ignored[:2] == ["node_modules/", ".env"]
    assert ignored.count(".env") == 1 and "/campaign.db-wal" in ignored
    assert (empty / ".env").read_text(encoding="utf-8") == "CAMPAIGN_SECRET_KEY=kept\n"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--from", "Council, Colorado <news@council.org>", 'quote the name: "Council, Colorado"'),
        ("--from", "news desk", "no valid address with a domain"),
        ("--from", "News <news@localhost>", "no valid address with a domain"),
        ("--public-url", "news.riverside-library.org", "not an http(s) address"),
        ("--public-url", "ftp://news.riverside-library.org", "not an http(s) address"),
        ("--organisation", "  ", "must not be empty"),
    ],
)
def test_init_refuses_a_bad_flag_and_creates_nothing(
    empty: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    args = list(FLAGS)
    args[args.index(flag) + 1] = value
    code, _, err = run_cli(capsys, "init", *args)
    assert code == 2
    assert flag in err and message in " ".join(err.replace("│", " ").split())
    assert _files(empty) == []


def test_init_asks_for_each_detail_without_proposing_any(empty: Path) -> None:
    register(["init"])
    answers = [
        "Friends of the Riverside Library",
        "4 Mill Lane, Riverside",
        "news.riverside-library.org",  # refused: not http(s)
        "https://news.riverside-library.org",
        "Council, Colorado <news@riverside-library.org>",  # refused: two addresses
        '"Council, Colorado" <news@riverside-library.org>',
    ]
    result = CliRunner().invoke(app, ["init"], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "Organisation name: " in result.output
    assert "[" not in result.output  # click shows a proposed default as [value]
    assert "not an http(s) address" in result.output
    assert "is not one address" in result.output
    settings = tomllib.loads((empty / "campaign.toml").read_text(encoding="utf-8"))
    assert settings["defaults"]["from"] == '"Council, Colorado" <news@riverside-library.org>'
    assert settings["public_base_url"] == "https://news.riverside-library.org"


def test_checks_of_the_details() -> None:
    assert check_public_url(" http://127.0.0.1:8000/ ") == "http://127.0.0.1:8000"
    assert check_from("news@riverside-library.org") == "news@riverside-library.org"
    with pytest.raises(UserError, match="not one address"):
        check_from("a@riverside-library.org, b@riverside-library.org")


def test_layouts_lists_built_in_and_workspace_layouts(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "layouts")
    assert code == 0
    assert "newsletter" in out and "built-in" in out and "replaces" not in out
    own = workspace / "layouts" / "plain"
    own.mkdir()
    (own / "layout.mjml.j2").write_text("<mjml></mjml>", encoding="utf-8")
    code, out, err = run_cli(capsys, "layouts", "copy", "newsletter")
    assert code == 0, err
    assert (workspace / "layouts/newsletter/layout.mjml.j2").read_bytes() == (
        BUILTIN_LAYOUTS / "newsletter/layout.mjml.j2"
    ).read_bytes()
    code, out, _ = run_cli(capsys, "layouts")
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "workspace (replaces the built-in one)  layouts/newsletter" in rows["newsletter"]
    assert rows["plain"].split()[1:] == ["workspace", "layouts/plain"]


def test_layouts_copy_never_overwrites(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "layouts" / "newsletter").mkdir()
    code, _, err = run_cli(capsys, "layouts", "copy", "newsletter")
    assert code == 1 and "already exists" in err
    assert list((workspace / "layouts" / "newsletter").iterdir()) == []
    code, _, err = run_cli(capsys, "layouts", "copy", "nope")
    assert code == 1 and "no built-in layout 'nope'" in err and "newsletter" in err


COMMANDS_OUTSIDE = [
    ["lists"],
    ["topics"],
    ["subscribers", "list"],
    ["subscribers", "import", "people.csv", "--list", "news"],
    ["build", "x"],
    ["new", "x"],
    ["send", "x", "--list", "news", "--yes"],
    ["status", "x"],
    ["schedule"],
    ["unschedule", "x"],
    ["dispatch"],
    ["serve"],
    ["preview"],
    ["layouts"],
    ["layouts", "copy", "newsletter"],
    ["dkim"],
    ["mailbox"],
    ["report", "x"],
    ["reports"],
    ["form", "news"],
    ["signups", "purge"],
]


def test_every_command_but_init_and_schema_is_tried_outside_a_workspace() -> None:
    assert {args[0] for args in COMMANDS_OUTSIDE} == set(COMMANDS) - {"init", "schema"}


@pytest.mark.parametrize("args", COMMANDS_OUTSIDE, ids=" ".join)
def test_a_command_outside_a_workspace_says_so_and_creates_nothing(
    empty: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 1
    assert "no campaign.toml in" in err and "campaign init" in err
    assert _files(empty) == []


def test_a_named_workspace_without_campaign_toml_is_refused(
    empty: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(capsys, "-w", str(empty), "lists")
    assert code == 1 and "--workspace" in err
    monkeypatch.setenv("CAMPAIGN_WORKSPACE", str(empty))
    code, _, err = run_cli(capsys, "lists")
    assert code == 1 and "CAMPAIGN_WORKSPACE" in err
    assert _files(empty) == []


def test_version_and_help_need_no_workspace(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "--version")[:2] == (0, f"campaign {version('campaign')}\n")
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "init" in out and "--install-completion" in out
    assert _files(empty) == []


def test_shell_completion_completes_commands_and_options(empty: Path) -> None:
    def complete(*words: str) -> list[str]:
        env = {
            **os.environ,
            "_CAMPAIGN_COMPLETE": "complete_bash",
            "COMP_WORDS": " ".join(["campaign", *words]),
            "COMP_CWORD": str(len(words)),
        }
        result = subprocess.run(
            [sys.executable, "-m", "campaign"], env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.split()

    assert complete("sub") == ["subscribers"]
    assert "--organisation" in complete("init", "--")
    assert _files(empty) == []
