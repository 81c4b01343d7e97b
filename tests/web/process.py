"""`campaign serve` as a real process, for the tests of what a hostile client can do to it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import free_port
from tests.web.conftest import WEBHOOK_ENV


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def peak_rss_kb(self) -> int:
        """The server's peak resident memory so far (VmHWM), in KB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


@contextmanager
def campaign_serve(workspace: Path, **env: str) -> Iterator[Served]:
    """`campaign serve` in `workspace` on a free port, answering /healthz; stopped afterwards."""
    port = free_port()
    log = workspace / f"serve-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign", "serve", "--port", str(port)],
            cwd=workspace,
            env={**environ, **WEBHOOK_ENV, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, served.output()
            try:
                httpx.get(served.url + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, served.output()
                time.sleep(0.05)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
