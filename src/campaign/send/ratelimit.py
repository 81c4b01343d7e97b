"""A messages-per-second limit shared by every concurrent provider call of one send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RateLimiter:
    """Token bucket paced by reservation: a batch of n goes out, and the next waits n/rate seconds.

    Over any span of T seconds at most `rate * T` messages go out, plus one batch.
    A rate of 0 means no limit.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait until a batch may go out, and hold the turn while the caller takes its batch and
        reports it with `took`. One caller at a time: nothing is taken before it may leave."""
        if self.rate <= 0:
            yield
            return
        async with self._turn:
            if (wait := self._next - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            yield

    def took(self, messages: int) -> None:
        """The batch taken in this turn holds `messages`: the next one waits their time."""
        if self.rate > 0:
            self._next = max(time.monotonic(), self._next) + messages / self.rate
