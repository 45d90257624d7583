"""What every control front-end streams: events derived from state changes, and call quality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from vcalld.daemon import Daemon
from vcalld.events import state_events
from vcalld.state import CallState, DeviceState, StateStore


class EventFeed:
    """Hands each event of each state change to one consumer, until closed."""

    def __init__(self, store: StateStore, deliver: Callable[[dict[str, Any]], None]) -> None:
        self._store = store
        self._deliver = deliver
        self._before = store.current
        store.listen(self._changed)

    def close(self) -> None:
        self._store.unlisten(self._changed)

    def _changed(self, state: DeviceState) -> None:
        for event in state_events(self._before, state):
            self._deliver(event)
        self._before = state


async def stats_samples(daemon: Daemon, interval: float) -> AsyncIterator[dict[str, Any]]:
    """Call statistics every `interval` seconds while a call is up (none while idle)."""
    while True:
        await asyncio.sleep(interval)
        if daemon.state.current.call is not CallState.IDLE:
            yield await daemon.call_stats()
