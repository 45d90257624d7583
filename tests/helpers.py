"""Helpers for tests that run daemons in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon


@asynccontextmanager
async def running(config: VcalldConfig) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready.set), name=f"daemon-{config.device.id}")
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Any], within: float, period: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy, for media measured in another task."""
    async with asyncio.timeout(within):
        while True:
            if value := check():
                return value
            await asyncio.sleep(period)


def received(daemon: Daemon, name: str) -> dict[str, Any]:
    """What `daemon`'s sink measured from the participant called `name`."""
    ids = [p.id for p in daemon.state.current.participants if p.name == name]
    snapshot = daemon.renderer.snapshot()
    return snapshot.get(ids[0], {}) if ids else {}
