"""A sound device that runs far faster than its clock is gone in all but name: a capture
stream at end of file (a `file` PCM whose writer left) or a playback stream whose sink went
returns at once, and a thread that trusted it to block would spin, sending the call stale
periods at thousands a second. Such a device is treated as lost, and reopened as a vanished
one is."""

from __future__ import annotations

import time
from collections.abc import Callable

RUNAWAY_FACTOR = 4  # this many seconds of audio moved in a second of real time...
WINDOW_SECONDS = 1.0  # ...over a whole window (a buffer filled or drained at open is far less)


class RunawayDeviceError(Exception):
    """The device moves audio faster than its clock could."""


class RunawayCheck:
    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._window_start = clock()
        self._frames = 0

    def moved(self, frames: int) -> None:
        """`frames` were read or written just now; raises RunawayDeviceError on a runaway."""
        self._frames += frames
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed < WINDOW_SECONDS:
            if self._frames > RUNAWAY_FACTOR * WINDOW_SECONDS * self._rate:
                speed = self._frames / self._rate / max(elapsed, 1e-3)
                raise RunawayDeviceError(
                    f"it moved {self._frames / self._rate:.1f} s of audio in {elapsed:.2f} s "
                    f"({speed:.0f}x its clock): its stream has ended"
                )
            return
        self._window_start, self._frames = now, 0
