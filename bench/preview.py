"""Live reload of `campaign preview`: from saving a file to the open page hearing about it.

    .venv/bin/python bench/preview.py [--rounds 20] [--browser]

Copies the repository's workspace to a temporary folder, starts `campaign preview`
there as its own process (a real uvicorn server on loopback), listens to its
server-sent events like an open page does, and then saves, in turn, a Markdown
file, campaign.yaml, an image and a layout partial of the example campaign. For
each save it prints:

- event: from the save to the "build" event reaching the client (the server has
  rebuilt by then: it announces only finished builds);
- page:  from the save to the rebuilt email fetched with the change in it (what a
  page's reload shows), for the kinds of change that a fetch can see.

With --browser it also drives Debian's Chromium (/usr/bin/chromium): from saving
the Markdown file to the changed text being on screen in the preview's desktop
iframe, the page having reloaded itself. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _report import emit

from campaign.load import BUILTIN_LAYOUTS

REPO = Path(__file__).resolve().parent.parent
SLUG = "2018-11-wsr-primer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_workspace(root: Path) -> None:
    shutil.copy(REPO / "campaign.toml", root / "campaign.toml")
    for folder in ("campaigns", "layouts"):
        shutil.copytree(REPO / folder, root / folder)
    # The reload is measured on a layout the workspace owns, as a user edits one.
    shutil.copytree(BUILTIN_LAYOUTS / "newsletter", root / "layouts" / "newsletter")
    (root / ".env").write_text("CAMPAIGN_SECRET_KEY=bench-only\n")


def start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CAMPAIGN_WORKSPACE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "preview", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/campaigns/{SLUG}", timeout=30).raise_for_status()
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the preview server did not start")


def listen(
    url: str, events: queue.Queue[tuple[float, str, dict[str, object]]], ready: threading.Event
) -> None:
    """Read the event stream on a thread, stamping each event with its arrival time."""
    try:
        with httpx.stream("GET", url, timeout=None) as stream:
            name = "message"
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    events.put((time.perf_counter(), name, json.loads(line[len("data: ") :])))
                    ready.set()
    except httpx.HTTPError:
        pass  # the server stopped


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def summary(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return f"{label:>6}: -"
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    median = statistics.median(ms)
    return f"{label:>6}: median {median:6.1f} ms  p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20, help="saves of each kind of file")
    parser.add_argument(
        "--browser", action="store_true", help="also measure to the text on screen in Chromium"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        copy_workspace(root)
        folder = root / "campaigns" / SLUG
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(root, port)
        try:
            events: queue.Queue[tuple[float, str, dict[str, object]]] = queue.Queue()
            ready = threading.Event()
            threading.Thread(
                target=listen, args=(f"{base}/events?campaign={SLUG}", events, ready), daemon=True
            ).start()
            if not ready.wait(10):
                raise SystemExit("no hello event from the preview server")
            events.get()

            markdown, yaml_file = folder / "spotlight.md", folder / "campaign.yaml"
            image = next((folder / "images").glob("*.png"))
            partial = root / "layouts" / "newsletter" / "partials" / "spotlight.mjml.j2"
            originals = {path: path.read_bytes() for path in (markdown, yaml_file, image, partial)}

            def save_markdown(n: int) -> str:
                marker = f"Benchmark sentence {n}."
                markdown.write_bytes(originals[markdown] + f"\n{marker}\n".encode())
                return marker

            def save_yaml(n: int) -> str:
                marker = f"Benchmark preheader {n}"
                text = (
                    originals[yaml_file]
                    .decode()
                    .replace("\npreheader: ", f"\npreheader: {marker} ", 1)
                )
                yaml_file.write_text(text)
                return marker

            def save_image(n: int) -> str:
                data = originals[image] + n.to_bytes(
                    4, "big"
                )  # bytes after IEND: still a valid PNG
                image.write_bytes(data)
                return hashlib.sha256(data).hexdigest()[
                    :12
                ]  # the fingerprint in the new asset name

            def save_layout(n: int) -> str:
                partial.write_bytes(originals[partial] + f"{{# benchmark {n} #}}\n".encode())
                return ""

            kinds: dict[str, Callable[[int], str]] = {
                "campaign Markdown file": save_markdown,
                "campaign.yaml": save_yaml,
                "image": save_image,
                "layout partial": save_layout,
            }
            stray = 0
            print(f"campaign preview live reload, {args.rounds} saves of each kind ({SLUG})")
            for label, save in kinds.items():
                to_event: list[float] = []
                to_page: list[float] = []
                for n in range(args.rounds):
                    time.sleep(
                        0.3
                    )  # let the previous save settle, then drop anything it still sent
                    while not events.empty():
                        events.get_nowait()
                        stray += 1
                    saved = time.perf_counter()
                    marker = save(n)
                    while True:
                        arrived, name, data = events.get(timeout=10)
                        if name == "build" and SLUG in data["campaigns"]:  # type: ignore[operator]
                            break
                    to_event.append(arrived - saved)
                    if marker:
                        html = httpx.get(f"{base}/campaigns/{SLUG}/email.html").text
                        if marker not in html:
                            raise SystemExit(
                                f"{label}: the page fetched after the event lacks the change"
                            )
                        to_page.append(time.perf_counter() - saved)
                print(label)
                print(summary("event", to_event))
                emit(
                    "preview",
                    f"save {label} -> reload event (median)",
                    median_ms(to_event),
                    "ms",
                    better="lower",
                )
                if to_page:
                    print(summary("page", to_page))
            for path, data in originals.items():
                path.write_bytes(data)
            print(f"stray events (a save announced twice): {stray}")

            if args.browser:
                browser_rounds(base, markdown, originals[markdown], args.rounds)
        finally:
            server.terminate()
            server.wait(10)


def browser_rounds(base: str, markdown: Path, original: bytes, rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/campaigns/{SLUG}")
        page.wait_for_selector("#live.on")
        on_screen: list[float] = []
        for n in range(rounds):
            marker = f"On screen {n}."
            page.wait_for_selector("#live.on")
            saved = time.perf_counter()
            markdown.write_bytes(original + f"\n{marker}\n".encode())
            page.frame_locator("#desktop").get_by_text(marker).wait_for(timeout=10_000)
            on_screen.append(time.perf_counter() - saved)
        browser.close()
    markdown.write_bytes(original)
    print("Chromium: save Markdown -> page reloaded by itself -> new text in the desktop iframe")
    print(summary("screen", on_screen))
    emit(
        "preview",
        "save Markdown -> new text on screen in Chromium (median)",
        median_ms(on_screen),
        "ms",
        better="lower",
    )


if __name__ == "__main__":
    main()
