"""Real-time pacing for generated media: one clock, no drift, no catch-up bursts."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Yields frame indices at a fixed rate against the monotonic clock.

    Deadlines come from the start time, so sleep jitter never accumulates; after a stall
    (a suspended VM, a busy loop) it skips the missed slots instead of bursting to catch up.
    """

    def __init__(self, rate: float) -> None:
        self._period = 1.0 / rate
        self._start = time.monotonic()
        self._index = 0

    async def next(self) -> int:
        deadline = self._start + self._index * self._period
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > self._period:
            self._index = int((time.monotonic() - self._start) / self._period)
        index = self._index
        self._index += 1
        return index
