"""A thread that keeps one ALSA device open: it reopens a device that is missing or gone, with
backoff, and says why it cannot use it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future

import alsaaudio

from vcalld.backoff import backoff_seconds
from vcalld.media.alsa.pcm import AudioDeviceError, Direction, PcmSpec, open_pcm
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import ReportProblem

RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
JOIN_SECONDS = 2.0
# An overloaded board can xrun every few periods; a journal line for each would add to the load.
XRUN_LOG_INTERVAL_SECONDS = 30.0

log = logging.getLogger(__name__)


class DeviceThread:
    """Subclasses move audio in `_stream` (until the device fails) and fill the time while it
    is unavailable in `_idle`; this class owns opening, reopening and stopping. A blocked
    read or write returns within a period, so stopping takes at most that long."""

    role = "audio device"

    def __init__(self, direction: Direction, spec: PcmSpec, report: ReportProblem) -> None:
        """`report` is called on the event loop, with the latest problem only."""
        self._direction = direction
        self.spec = spec
        self._report_on_loop = report
        self._problems: LoopHandoff[str | None] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"alsa-{spec.device}", daemon=True)
        self._finished: Future[None] = Future()
        self.xruns = 0  # capture overruns or playback underruns, each recovered
        self._next_xrun_log = 0.0

    async def run(self) -> None:
        """Run the thread until cancelled; a bug in it is raised here, not lost with it."""
        loop = asyncio.get_running_loop()
        self._problems = LoopHandoff(loop, self._report_on_loop, depth=1)
        self._thread.start()
        try:
            # Shielded: the thread settles the future itself, also after a cancellation.
            await asyncio.shield(asyncio.wrap_future(self._finished))
        finally:
            self._stopping.set()
            await asyncio.to_thread(self._thread.join, JOIN_SECONDS)

    def _run(self) -> None:
        try:
            self._keep_open()
        except BaseException as error:
            self._finished.set_exception(error)
        else:
            self._finished.set_result(None)

    def _keep_open(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                pcm = open_pcm(self._direction, self.spec)
            except AudioDeviceError as error:
                self._report(f"{self.role} unavailable: {error}")
                self._idle(backoff_seconds(attempt, RETRY_MIN_SECONDS, RETRY_MAX_SECONDS))
                attempt += 1
                continue
            attempt = 0
            self._report(None)
            try:
                self._stream(pcm, self._stopping)
            except alsaaudio.ALSAAudioError as error:
                self._report(f"{self.role} lost: {error}")
            finally:
                pcm.close()

    def _xrun(self) -> None:
        """The device ran over (capture) or dry (playback): this thread was late for it."""
        self.xruns += 1
        now = time.monotonic()
        if now >= self._next_xrun_log:
            self._next_xrun_log = now + XRUN_LOG_INTERVAL_SECONDS
            log.info("%s xruns: %d so far; its thread was late for it", self.role, self.xruns)

    def _report(self, problem: str | None) -> None:
        assert self._problems is not None
        self._problems.put(problem)

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        raise NotImplementedError

    def _idle(self, seconds: float) -> None:
        self._stopping.wait(seconds)
