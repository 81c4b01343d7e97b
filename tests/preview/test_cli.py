"""`campaign preview` as a user runs it: a process that serves until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from campaign.cli import main
from tests.preview.conftest import EXAMPLE


@pytest.fixture
def running(workspace: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`campaign preview EXAMPLE --port 0` in the workspace, and the URL it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "preview", EXAMPLE, "--port", "0"],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the process prints its URL once it listens
    found = re.search(r"http://127\.0\.0\.1:\d+/\S*", line)
    try:
        assert found, line + (
            process.stderr.read() if process.poll() is not None and process.stderr else ""
        )
        yield process, found.group(0)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_serves_the_named_campaign_and_stops_on_ctrl_c(
    running: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = running
    assert url.endswith(f"/campaigns/{EXAMPLE}")
    assert "Worker-Driven Social Responsibility" in httpx.get(url, timeout=30).text
    base = url.split("/campaigns/")[0]
    with httpx.stream("GET", f"{base}/events?campaign={EXAMPLE}", timeout=10) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        stopped = time.monotonic()
        process.send_signal(signal.SIGINT)
        rest = list(lines)  # the server ends the stream cleanly rather than cutting it off
    process.wait(timeout=10)
    assert time.monotonic() - stopped < 5
    assert rest[:2] == ["event: hello", 'data: {"generation": 0}']
    errors = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in errors and "ERROR" not in errors, errors


def test_unknown_campaign_is_a_clear_error(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "no-such-campaign"])
    assert exit_info.value.code == 1
    assert "no campaign 'no-such-campaign'" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["preview", "--port", str(port)])
    assert exit_info.value.code == 1
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
