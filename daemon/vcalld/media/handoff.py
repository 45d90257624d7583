"""From a device thread to the event loop without an unbounded queue in between."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class LoopHandoff(Generic[Item]):
    """Items put by a thread are delivered on the loop, at most `depth` waiting.

    `call_soon_threadsafe` per item would queue without bound while the loop is busy; here a
    stalled loop costs the oldest items (counted in `dropped`), never memory or latency.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deliver: Callable[[Item], None], depth: int
    ) -> None:
        self._loop = loop
        self._deliver = deliver
        self._items: deque[Item] = deque(maxlen=depth)
        self._lock = threading.Lock()
        self._scheduled = False
        self.dropped = 0

    def put(self, item: Item) -> None:
        """Thread side; never blocks. After the loop has closed, items are discarded."""
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed while the thread was stopping
            return

    def _drain(self) -> None:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._scheduled = False
        for item in items:
            self._deliver(item)
