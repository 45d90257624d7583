"""Frames waiting for a worker on the event loop (a processor chain, an encoder)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")


class Waiting(Generic[ItemT]):
    """At most `depth` items wait: a slow worker costs the oldest, never latency."""

    def __init__(self, depth: int) -> None:
        self._items: deque[ItemT] = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self.dropped = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def put(self, item: ItemT) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    async def taken(self) -> AsyncIterator[ItemT]:
        """Each item in turn as it comes, until the worker is cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._items:
                yield self._items.popleft()
