"""A token bucket: how much a connection may send, sustained and at once."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimit:
    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_second = per_second
        self._burst = float(burst)
        self._clock = clock
        self._available = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        """Takes one message's worth if there is one."""
        now = self._clock()
        self._available = min(self._burst, self._available + (now - self._at) * self._per_second)
        self._at = now
        if self._available < 1:
            return False
        self._available -= 1
        return True
