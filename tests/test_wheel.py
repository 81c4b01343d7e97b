"""The package as a new organisation gets it: the wheel, installed into a new venv outside
the checkout, run from an empty folder: init, new, build, import, send, serve; every
image of the sent emails and of the archive page answers from `campaign serve`.

The venv gets nothing from the checkout but the wheel built from it: its dependencies
are installed offline from the wheels `scripts/setup --test` keeps in .venv/wheelhouse,
so the test never reaches the network and a dependency missing from pyproject.toml
fails it. No system time zone database is visible to it (PYTHONTZPATH points nowhere),
so the time zones come from the tzdata package.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import REPO, unavailable
from tests.servers import free_port

pytestmark = pytest.mark.slow

WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
"""Wheels of every dependency, made by `scripts/setup --test`."""


@dataclass(frozen=True)
class Installed:
    """A venv holding the wheel, and an environment that runs its `campaign` only."""

    venv: Path
    env: dict[str, str]

    def run(self, cwd: Path, *args: str) -> str:
        """`campaign ARGS` in `cwd`: its standard output; a failure shows everything it said."""
        result = subprocess.run(
            [str(self.venv / "bin" / "campaign"), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"campaign {' '.join(args)}:\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from a copy of the sources and install it into a new venv, offline."""
    if not (WHEELHOUSE / ".made").is_file():
        unavailable(f"no wheels of the dependencies in {WHEELHOUSE}: run scripts/setup --test")
    root = tmp_path_factory.mktemp("wheel")
    # A copy of what the wheel is built from, so no stale build/ folder can add files to it.
    source = root / "source"
    shutil.copytree(
        REPO / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    started = time.perf_counter()
    _pip(
        "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(root / "dist"), str(source)
    )
    built = time.perf_counter()
    [wheel] = (root / "dist").glob("campaign-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    sources = {
        str(path.relative_to(source / "src"))
        for path in (source / "src" / "campaign").rglob("*")
        if path.is_file()
    }
    assert sources - packed == set(), "package files left out of the wheel"
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _pip(
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        "--find-links",
        str(root / "dist"),
        "campaign",
    )
    print(
        f"wheel built in {built - started:.1f} s, "
        f"venv with it installed in {time.perf_counter() - built:.1f} s"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "PYTHON"))}
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONTZPATH": str(root / "no-zoneinfo"),
        "COLUMNS": "200",
    }
    return Installed(venv, env)


def _start_serve(installed: Installed, cwd: Path, port: int) -> subprocess.Popen[str]:
    """`campaign serve` on `port`, once it answers its health check."""
    process = subprocess.Popen(
        [str(installed.venv / "bin" / "campaign"), "serve", "--port", str(port)],
        cwd=cwd,
        env=installed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"campaign serve ended: {process.communicate()[0]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "campaign serve did not answer within 60 s"
        time.sleep(0.1)


def _messages(folder: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _assert_images_answer(html: str, base: str) -> None:
    """Every image of `html` (resolved against `base`) answers 200 with an image type."""
    sources = {urljoin(base, src) for src in re.findall(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", html)}
    assert sources, "no image"
    for url in sources:
        assert url.startswith(base.split("/archive")[0] + "/assets/"), url
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("image/"), url


def test_a_new_organisation_installs_the_wheel_and_sends_its_first_newsletter(
    installed: Installed, tmp_path: Path, db_url: str
) -> None:
    """The sender works in its workspace; `campaign serve` runs in another folder holding only
    campaign.toml and .env, so the pages and images it serves come from the database alone."""
    python = installed.venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import campaign; print(campaign.__file__)"],
        cwd=tmp_path,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed.venv)), where
    home = tmp_path / "home"
    home.mkdir()
    assert installed.run(home, "--version").startswith("campaign ")

    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    out = installed.run(
        home,
        "init",
        "news",
        "--organisation",
        "Friends of the Riverside Library",
        "--address",
        "4 Mill Lane, Riverside, RS1 2AB",
        "--public-url",
        public_url,
        "--from",
        "Riverside Library <news@riverside-library.org>",
    )
    workspace = home / "news"
    assert "Created a workspace" in out
    installed = replace(installed, env={**installed.env, "CAMPAIGN_DATABASE_URL": db_url})
    layouts = installed.run(workspace, "layouts")
    assert re.search(r"newsletter\s+built-in\s+" + re.escape(str(installed.venv)), layouts)

    out = installed.run(workspace, "new", "2026-12-update")
    assert (workspace / "campaigns" / "2026-12-update" / "campaign.yaml").is_file()
    out = installed.run(workspace, "build", "2026-12-update")
    assert "built 2026-12-update" in out
    page = (workspace / "site" / "2026-12-update" / "index.html").read_text(encoding="utf-8")
    assert "4 Mill Lane, Riverside, RS1 2AB" in page

    (workspace / "people.csv").write_text(
        "email,first_name\nana@riverside-library.org,Ana\nbo@riverside-library.org,Bo\n"
        "cy@riverside-library.org,Cy\n",
        encoding="utf-8",
    )
    out = installed.run(workspace, "subscribers", "import", "people.csv", "--list", "news")
    assert "3 added" in out
    installed.run(workspace, "send", "2026-12-update", "--list", "news", "--yes")
    messages = _messages(workspace / "outbox" / "2026-12-update")
    assert sorted(m["To"].addresses[0].username for m in messages) == ["ana", "bo", "cy"]
    assert all(str(m["From"]) == "Riverside Library <news@riverside-library.org>" for m in messages)

    web_host = tmp_path / "web"
    web_host.mkdir()
    for name in ("campaign.toml", ".env"):
        shutil.copy(workspace / name, web_host / name)
    server = _start_serve(installed, web_host, port)
    try:
        body = _html(messages[0])
        view = re.search(re.escape(public_url) + r"/archive/[^\"'\s<>]+", body)
        assert view is not None, "no web-copy link to the public URL"
        page = httpx.get(view.group(0), timeout=10)
        assert page.status_code == 200 and "4 Mill Lane" in page.text
        index = httpx.get(f"{public_url}/archive", timeout=10)
        assert index.status_code == 200 and "2026-12-update" in index.text
        for message in messages:
            _assert_images_answer(_html(message), public_url)
        _assert_images_answer(page.text, view.group(0))
    finally:
        server.terminate()
        server.communicate(timeout=30)
