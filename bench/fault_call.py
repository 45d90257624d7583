"""What every fault of `bench.faults` is measured by: the call it is done to, whether video
flows (the watcher counts the kiosk's stamped frames, and the other way), and the time until it
does again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import eventually, loopback_config, received
from tests.mqtt import Mosquitto
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer

RECOVERY_LIMIT_SECONDS = 30.0  # a fault not healed by then is reported as not recovered
FLOW_WINDOW_SECONDS = 0.5
VIDEO = {"width": 320, "height": 240, "fps": 15}
MIN_FRAMES_IN_WINDOW = 3  # of 7.5 at 15 fps: video is flowing, not a frame or two late


@dataclass
class Row:
    fault: str
    lasted: str
    recovered_seconds: float | None
    notes: str

    def cells(self) -> list[str]:
        seconds = self.recovered_seconds
        if seconds is None:
            recovered = "not recovered"
        else:  # flowing already in the first window looked at: the window is the resolution
            recovered = f"{seconds:.1f}" if seconds >= 0.05 else f"≤ {FLOW_WINDOW_SECONDS:g}"
        return [self.fault, self.lasted, recovered, self.notes]


async def flowing(daemon: Daemon, name: str) -> bool:
    """`daemon` is receiving `name`'s video now, not just remembering some."""
    before = received(daemon, name).get("video", {}).get("stamped_frames", 0)
    await asyncio.sleep(FLOW_WINDOW_SECONDS)
    after = received(daemon, name).get("video", {}).get("stamped_frames", 0)
    return bool(after - before >= MIN_FRAMES_IN_WINDOW)


async def seconds_until(
    check: Callable[[], Awaitable[bool] | bool], since: float, window: float = FLOW_WINDOW_SECONDS
) -> float | None:
    """From `since` to the first time `check` holds, less the `window` it looks back over."""
    try:
        await eventually(check, RECOVERY_LIMIT_SECONDS, period=0.05)
    except TimeoutError:
        return None
    return max(0.0, time.monotonic() - window - since)


class Call:
    """The kiosk and the watcher, both in this process, and what they share."""

    def __init__(self, folder: Path, server: RoomServer, broker: Mosquitto) -> None:
        self.folder, self.server, self.broker = folder, server, broker
        self.kiosk: Daemon
        self.watcher: Daemon

    def config(
        self, device_id: str, call: dict[str, Any] | None = None, **sections: dict[str, Any]
    ) -> VcalldConfig:
        """Through the room server unless `call` says otherwise."""
        sections["video"] = VIDEO | sections.get("video", {})
        return loopback_config(
            device_id, self.folder, self.server.port, "faults", call=call or {}, **sections
        )

    async def both_ways(self) -> bool:
        return await flowing_both_ways(self.kiosk, self.watcher)

    async def recovery(self, since: float) -> float | None:
        return await seconds_until(self.both_ways, since)


async def flowing_both_ways(kiosk: Daemon, watcher: Daemon) -> bool:
    ours, theirs = await asyncio.gather(
        flowing(watcher, kiosk.config.device.id), flowing(kiosk, watcher.config.device.id)
    )
    return ours and theirs
