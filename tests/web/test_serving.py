"""`campaign serve` against hostile clients: bounded bodies, slow headers, idle connections,
a port in use, and no personal token in its log."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from campaign.audience import Store
from campaign.config import load_config
from campaign.db import connect
from campaign.links import Links
from campaign.web.app import create_app
from campaign.web.serving import FORM_BODY_LIMIT, masked_path, server_config
from tests.conftest import SECRET_KEY, run_cli
from tests.web.conftest import BASE_URL
from tests.web.process import campaign_serve


def test_a_port_in_use_is_a_plain_error(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = run_cli(capsys, "serve", "--port", str(port))
    assert code == 1
    assert f"port {port} on 127.0.0.1 is in use" in err and "Traceback" not in err
    assert "Serving" not in out


def test_a_50_mb_chunked_body_is_refused_early(workspace: Path) -> None:
    with campaign_serve(workspace) as served:
        before = served.peak_rss_kb()
        sent = 0
        with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(
                b"POST /webhooks/postmark HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
            try:
                while sent < 50 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += 65536
            except OSError:
                pass  # the server closed the connection after its 413, as it should
            sock.settimeout(5)
            try:
                reply = sock.recv(200)
            except OSError:
                reply = b""
        growth_mb = (served.peak_rss_kb() - before) / 1024
        output = served.output()
    assert sent < 50 * 1024 * 1024 or reply.startswith(b"HTTP/1.1 413")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 413"), reply
    assert growth_mb < 20, f"server memory grew by {growth_mb:.1f} MB"
    assert "refused POST /webhooks/postmark" in output and "Traceback" not in output
    print(f"50 MB chunked body: {sent / 1024 / 1024:.1f} MB sent, server grew {growth_mb:.1f} MB")


def test_idle_connections_leave_the_server_answering(workspace: Path) -> None:
    with campaign_serve(workspace) as served:
        port = int(served.url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        try:
            for sock in idle[::2]:  # half of them start a request and never finish its headers
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            response = httpx.get(served.url + "/healthz", timeout=5)
            elapsed = time.monotonic() - started
        finally:
            for sock in idle:
                sock.close()
        output = served.output()
    assert response.status_code == 200
    assert elapsed < 1.0, f"answered after {elapsed:.2f} s"
    assert "Traceback" not in output


def test_no_token_in_the_access_log(workspace: Path) -> None:
    config = load_config(workspace)
    store = Store(connect(config.database_url))
    ana = store.subscribe("ana@example.org", list_name="newsletter", source="test")
    token = Links(SECRET_KEY, BASE_URL).token("unsubscribe", ana.public_id, "c")
    with campaign_serve(workspace) as served:
        httpx.get(f"{served.url}/unsubscribe/{token}?x=1", timeout=5)
        httpx.post(
            f"{served.url}/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        ).raise_for_status()
        deadline = time.monotonic() + 5
        while served.output().count("/unsubscribe/***") < 2:
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.05)
        output = served.output()
    assert token not in output and ana.public_id not in output


def test_masked_path() -> None:
    assert masked_path("/forward/abc.def-ghi?x=1") == "/forward/***?x=1"
    assert masked_path("/archive/2018-11") == "/archive/2018-11"


@pytest.fixture
def guarded(workspace: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> Iterator[int]:
    """The app under uvicorn with a 0.5 s header deadline, in this process: its port."""
    from tests.web.conftest import make_config

    app = create_app(make_config(workspace, db_url))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = server_config(app, header_timeout=0.5, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    caplog.set_level(logging.WARNING, "campaign.web")
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_slow_headers_are_cut_off(guarded: int, caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_connection(("127.0.0.1", guarded)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(5)
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed, no answer
        assert time.monotonic() - started < 3
    assert "request headers too slow" in caplog.text


def test_a_keep_alive_connection_gets_the_deadline_again(guarded: int) -> None:
    with socket.create_connection(("127.0.0.1", guarded)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        reply = b""
        while not reply.endswith(b"ok\n"):
            reply += sock.recv(1000)
        assert reply.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert sock.recv(100) == b""


async def test_a_form_body_past_its_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> object:
        for _ in range(FORM_BODY_LIMIT // 1000 + 5):
            yield b"x" * 1000
            await asyncio.sleep(0)

    response = await client.post("/unsubscribe/anything", content=chunks())  # type: ignore[arg-type]
    assert response.status_code == 413
    declared = await client.post(
        "/preferences/anything", content=b"x", headers={"Content-Length": str(10**9)}
    )
    assert declared.status_code == 413
