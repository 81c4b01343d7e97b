"""Fixtures every test area shares: a workspace copy, a database on each backend, Chromium.

On CI (CI=true) nothing is skipped: a missing PostgreSQL or Chromium fails the run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
POSTGRES_URL = os.environ.get("CAMPAIGN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET_KEY = "test-secret-key-not-for-production"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`campaign ARGS...` run in-process: its exit code, stdout and stderr."""
    from campaign.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail on CI, where every test must run."""
    if ON_CI:
        pytest.fail(f"{reason} (CI must run every test)")
    pytest.skip(reason)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's workspace (campaign.toml, campaigns/, layouts/, samples/)
    in a temporary folder, with a signing key in its .env; the current directory."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "campaign.toml", root / "campaign.toml")
    for folder in ("campaigns", "layouts", "samples"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, root / folder)
    (root / ".env").write_text(f"CAMPAIGN_SECRET_KEY={SECRET_KEY}\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("CAMPAIGN_WORKSPACE", raising=False)
    monkeypatch.delenv("CAMPAIGN_DATABASE_URL", raising=False)
    return root


REAL_BASE_URL = "https://news.coloradohtc.org"
REAL_FROM = "Colorado Human Trafficking Council <newsletter@coloradohtc.org>"


def real_sender(workspace: Path, provider: str | None = None) -> None:
    """Give the workspace's campaign.toml sender details that may reach real mail (no
    example domains, an https public URL), so a real provider passes preflight; and,
    if given, a `[provider]` block (TOML lines) instead of the outbox."""
    toml = workspace / "campaign.toml"
    text = toml.read_text()
    text = text.replace(
        'public_base_url = "https://news.example.org"', f'public_base_url = "{REAL_BASE_URL}"'
    )
    text = text.replace(
        'from = "Colorado Human Trafficking Council <newsletter@news.example.org>"',
        f'from = "{REAL_FROM}"',
    )
    text = text.replace('reply_to = "chtc@example.org"', 'reply_to = "chtc@coloradohtc.org"')
    if provider is not None:
        text = text.replace('[provider]\nname = "outbox"\n', provider)
    toml.write_text(text)


def own_layout(workspace: Path, name: str = "newsletter") -> Path:
    """Copy built-in layout `name` into the workspace's layouts/, as a user does to change it."""
    from campaign.load import BUILTIN_LAYOUTS

    folder = workspace / "layouts" / name
    shutil.copytree(BUILTIN_LAYOUTS / name, folder)
    return folder


def _postgres_schema_url() -> Iterator[str]:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from campaign.db import normalise_url

    admin = sqlalchemy.create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc.orig}")
        return
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        from campaign.db import dispose

        dispose(url)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, then a PostgreSQL schema of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema of the test's own (for tests that need PostgreSQL only)."""
    yield from _postgres_schema_url()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, driven by playwright; never a downloaded browser.

    Module-scoped: playwright's sync API keeps an event loop running in the main
    thread while it is open, which would break the async tests of other modules."""
    if not CHROMIUM.exists():
        unavailable(
            "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
