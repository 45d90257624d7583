"""systemd integration: readiness, a STATUS line that follows the device state, the watchdog.

All of it speaks sd_notify(3) through systemd-python and does nothing without NOTIFY_SOCKET,
so the same daemon runs from a shell or a test unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from systemd import daemon as sd

from vcalld.state import CallState, DeviceState

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._status = ""

    def ready(self, state: DeviceState) -> None:
        """After the devices are open and the first join is under way: `systemctl start`
        returns then, and units ordered after vcalld find it working."""
        self._send(f"READY=1\nSTATUS={status_line(state)}")

    def reloading(self) -> None:
        self._send("RELOADING=1\nSTATUS=reloading the configuration")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=leaving the call and stopping")

    def state_changed(self, state: DeviceState) -> None:
        line = status_line(state)
        if line != self._status:
            self._status = line
            self._send(f"STATUS={line}")
            # The same line in the log, with fields to select on in the journal.
            fields = {"VCALLD_CALL": state.call.value, "VCALLD_ROOM": state.room or ""}
            log.info("status: %s", line, extra=fields)

    async def feed_watchdog(self, healthy: Callable[[], str | None]) -> None:
        """Ping at half of WatchdogSec while `healthy()` finds nothing wrong. This runs on the
        event loop, so a blocked loop stops the pings too and systemd restarts the daemon."""
        interval = watchdog_seconds()
        if interval is None or not self.enabled:
            return
        while True:
            problem = healthy()
            if problem is None:
                self._send("WATCHDOG=1")
            else:
                log.error("not feeding the watchdog: %s", problem)
            await asyncio.sleep(interval / 2)

    def _send(self, message: str) -> None:
        if self.enabled:
            sd.notify(message)


def watchdog_seconds() -> float | None:
    """WatchdogSec= as systemd passes it, if it is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r", usec)
        return None


def status_line(state: DeviceState) -> str:
    """What `systemctl status vcalld` shows: call state, room, people, mutes, trouble."""
    if state.call is CallState.IDLE:
        parts = ["idle"]
    else:
        parts = [f"{state.call.value} in {state.room}"]
        count = len(state.participants)
        parts.append(f"{count} participant{'s' if count != 1 else ''}")
    muted = [name for name, on in (("mic", state.audio_muted), ("camera", state.video_muted)) if on]
    if muted:
        parts.append(" and ".join(muted) + " muted")
    if state.mqtt not in (None, "connected"):
        parts.append(f"mqtt {state.mqtt}")
    if state.last_error:
        parts.append(f"error: {state.last_error}")
    return "; ".join(parts)
