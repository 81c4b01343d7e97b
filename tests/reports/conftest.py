"""Helpers for the report tests: a workspace sending through the local Postmark, the CLI as
a real process, and what to read back from the messages Postmark took."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import real_sender
from tests.servers.postmark import TOKEN

SLUG = "2018-11-wsr-primer"
POSTMARK_AUTH = "postmark:hook-password"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def postmark_workspace(
    workspace: Path, url: str, *, people: int, track_clicks: str = "off"
) -> None:
    """The example workspace sending through the Postmark double at `url` with sender details
    that pass preflight, `people` subscribers on the newsletter list, and `track_clicks`."""
    real_sender(workspace, f'[provider]\nname = "postmark"\nbase_url = "{url}"\n')
    toml = workspace / "campaign.toml"
    assert f'base_url = "{url}"' in toml.read_text()
    toml.write_text(f'track_clicks = "{track_clicks}"\n' + toml.read_text())
    with (workspace / ".env").open("a") as env:
        env.write(f"POSTMARK_SERVER_TOKEN={TOKEN}\nPOSTMARK_WEBHOOK_AUTH={POSTMARK_AUTH}\n")
    rows = "".join(f"person{n:02}@example.org,Person {n}\n" for n in range(people))
    (workspace / "people.csv").write_text("email,name\n" + rows)
    done = cli(workspace, "subscribers", "import", "people.csv", "--list", "newsletter")
    assert done.returncode == 0, done.stderr


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`campaign ARGS...` as a process in `workspace` (its own event loop, as a user runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    return subprocess.run(
        [sys.executable, "-m", "campaign", *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def headers_of(message: dict[str, Any]) -> dict[str, str]:
    return {h["Name"]: h["Value"] for h in message.get("Headers") or []}


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field in the page"
    return found.group(1)


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def tracked_hrefs(html: str, public_base_url: str) -> list[str]:
    """The distinct /r/ links of a tracked message, in order."""
    return list(dict.fromkeys(h for h in hrefs(html) if h.startswith(public_base_url + "/r/")))
