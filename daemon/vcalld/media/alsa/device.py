"""The ALSA side of a device thread: a PCM opened to a spec, and xruns counted."""

from __future__ import annotations

import logging
import time

import alsaaudio

from vcalld.media.alsa.pcm import AudioDeviceError, Direction, PcmSpec, open_pcm
from vcalld.media.alsa.runaway import RunawayDeviceError
from vcalld.media.device_thread import DeviceThread
from vcalld.media.sources.base import ReportProblem

# An overloaded board can xrun every few periods; a journal line for each would add to the load.
XRUN_LOG_INTERVAL_SECONDS = 30.0

log = logging.getLogger(__name__)


class AlsaDeviceThread(DeviceThread[alsaaudio.PCM]):
    """A blocked read or write returns within a period, so stopping takes at most that long."""

    role = "audio device"
    unavailable_errors = (AudioDeviceError,)
    lost_errors = (alsaaudio.ALSAAudioError, RunawayDeviceError)

    def __init__(self, direction: Direction, spec: PcmSpec, report: ReportProblem) -> None:
        super().__init__(f"alsa-{spec.device}", report)
        self._direction = direction
        self.spec = spec
        self.xruns = 0  # capture overruns or playback underruns, each recovered
        self._next_xrun_log = 0.0

    def _open(self) -> alsaaudio.PCM:
        return open_pcm(self._direction, self.spec)

    def _close(self, pcm: alsaaudio.PCM) -> None:
        pcm.close()

    def _xrun(self) -> None:
        """The device ran over (capture) or dry (playback): this thread was late for it."""
        self.xruns += 1
        now = time.monotonic()
        if now >= self._next_xrun_log:
            self._next_xrun_log = now + XRUN_LOG_INTERVAL_SECONDS
            log.info("%s xruns: %d so far; its thread was late for it", self.role, self.xruns)
