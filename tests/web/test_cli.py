"""`campaign serve`: the command runs the app under uvicorn; a missing secret is a plain error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from campaign.cli import main
from tests.servers import free_port


def test_serve_answers_health_checks(workspace: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "serve", "--port", str(port)],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert (response.status_code, response.text) == (200, "ok\n")
        assert "server" not in response.headers
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert f"on http://127.0.0.1:{port} (public URL https://news.example.org)" in output


def test_serve_without_a_signing_key_is_a_plain_error(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / ".env").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "CAMPAIGN_SECRET_KEY" in err and "Traceback" not in err
