"""Live reload for `campaign preview`: watch the workspace's sources, tell the open pages.

The preview rebuilds what a saved file affects and only then announces it, so a
page that reloads on the announcement always finds the new build ready. Pages
listen with an EventSource (server-sent events: plain HTTP, reconnects by itself,
no websocket needed for a one-way signal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.responses import StreamingResponse
from watchfiles import awatch

log = logging.getLogger(__name__)

PING_SECONDS = 15.0
"""A comment line this often keeps proxies and the browser from timing the stream out."""

RECONNECT_MS = 500
"""How soon an EventSource reconnects after the server restarts."""

STEP_MS = 50
"""watchfiles yields once the disk has been quiet this long: one rebuild per save,
even when an editor writes a temporary file and renames it."""


@dataclass(frozen=True)
class Event:
    """One server-sent event: `name` is the event type, `data` goes out as JSON."""

    name: str
    data: dict[str, Any]

    def encode(self) -> str:
        return f"event: {self.name}\ndata: {json.dumps(self.data)}\n\n"


@dataclass(eq=False)
class _Listener:
    topic: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(maxsize=64))
    """None ends the stream."""


class Broadcaster:
    """Fans events out to every open page; each page listens to one topic (a campaign) or all."""

    def __init__(self) -> None:
        self._listeners: set[_Listener] = set()

    @contextmanager
    def listen(self, topic: str | None) -> Iterator[asyncio.Queue[Event | None]]:
        listener = _Listener(topic)
        self._listeners.add(listener)
        try:
            yield listener.queue
        finally:
            self._listeners.discard(listener)

    @property
    def topics(self) -> set[str]:
        """The campaigns some open page is showing right now."""
        return {listener.topic for listener in self._listeners if listener.topic is not None}

    def publish(self, event: Event | None) -> None:
        for listener in self._listeners:
            if listener.queue.full():  # a page that stopped reading needs only the newest news
                listener.queue.get_nowait()
            listener.queue.put_nowait(event)

    def close(self) -> None:
        """End every open stream, so a server shutting down need not wait for the pages."""
        self.publish(None)


def event_stream(broadcaster: Broadcaster, topic: str | None, hello: Event) -> StreamingResponse:
    """The text/event-stream response for one page.

    `hello` goes first, so a page rendered just before a rebuild finished learns that
    it is stale even though it connected after the announcement.
    """

    async def lines() -> AsyncIterator[str]:
        with broadcaster.listen(topic) as queue:
            yield f"retry: {RECONNECT_MS}\n" + hello.encode()
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=PING_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if event is None:
                    return
                yield event.encode()

    return StreamingResponse(
        lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def watch_paths(
    paths: Iterable[Path],
    on_change: Callable[[set[Path]], Awaitable[None]],
    stop: threading.Event,
) -> None:
    """Call `on_change` with the changed files after each save, until `stop` is set.

    Paths that do not exist are left out (a workspace may have no campaign.toml). A
    failure inside `on_change` is logged and watching goes on: live reload must
    outlive any bug in one rebuild. If the watcher itself fails (a watched folder
    removed), this returns; the preview starts a new one on its next request.
    """
    existing = [path for path in paths if path.exists()]
    if not existing:
        return
    try:
        async for changes in awatch(*existing, stop_event=stop, step=STEP_MS):
            try:
                await on_change({Path(path) for _change, path in changes})
            except Exception:
                log.exception("preview: rebuilding after a change failed")
    except (OSError, RuntimeError) as exc:
        log.warning(
            "preview: watching %s stopped (%s); it restarts with the next page",
            ", ".join(map(str, existing)),
            exc,
        )
