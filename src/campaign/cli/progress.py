"""Progress of long work other than a send (which has its own counts): a rich bar on a
terminal, a plain line every few seconds otherwise (cron, logs, pipes)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_EVERY = 5.0
"""Seconds between plain progress lines."""


class Steps:
    """Call with (done, total) as work goes; `stop()` when it ends, however it ends."""

    def __init__(self, label: str, console: Console) -> None:
        self.label = label
        self.console = console
        self.last = time.monotonic()
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.task = self.bar.add_task(label, total=None)
            self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=total, completed=done)
            return
        now = time.monotonic()
        if now - self.last >= PLAIN_EVERY and done < total:
            self.last = now
            self.console.print(f"{self.label}: {done:,}/{total:,}", markup=False, soft_wrap=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
