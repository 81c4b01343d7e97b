"""A messages-per-second limit shared by every concurrent provider call of one send."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Token bucket paced by reservation: a batch of n goes out, and the next waits n/rate seconds.

    Over any span of T seconds at most `rate * T` messages go out, plus one batch.
    A rate of 0 means no limit.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def acquire(self, messages: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + messages / self.rate
        if start > now:
            await asyncio.sleep(start - now)

    def refund(self, messages: int) -> None:
        """Give back part of a reservation that did not go out (fewer messages were due)."""
        if self.rate > 0 and messages > 0:
            self._next = max(time.monotonic(), self._next - messages / self.rate)
