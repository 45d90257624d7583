"""A thread that keeps one device open (a sound card, a camera): it reopens a device that is
missing or gone, with backoff, and says why it cannot use it."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar, Generic, TypeVar

from vcalld.backoff import backoff_seconds
from vcalld.media.handoff import LoopHandoff
from vcalld.media.own_thread import run_in_own_thread
from vcalld.media.sources.base import ReportProblem

RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0

Handle = TypeVar("Handle")


class DeviceThread(Generic[Handle]):
    """Subclasses open the device in `_open` (raising one of `unavailable_errors`), move media
    in `_stream` until it fails (with one of `lost_errors`) and fill the time while it is
    unavailable in `_idle`; this class owns opening, reopening, reporting and stopping.
    `_stream` must notice `stopping` within a frame or period."""

    role: ClassVar[str] = "device"
    # False: the device is reported fine by the subclass once it delivers, not when it opens
    # (a camera can open and then send nothing).
    fine_when_open: ClassVar[bool] = True
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = ()
    lost_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, name: str, report: ReportProblem) -> None:
        """`report` is called on the event loop, with the latest problem only."""
        self._report_on_loop = report
        self._problems: LoopHandoff[str | None] | None = None
        self._stopping = threading.Event()
        self._name = name

    async def run(self) -> None:
        """Run the thread until cancelled; a bug in it is raised here, not lost with it."""
        loop = asyncio.get_running_loop()
        self._problems = LoopHandoff(loop, self._report_on_loop, depth=1)
        await run_in_own_thread(self._name, self._keep_open, self._stopping)

    def _keep_open(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                handle = self._open()
            except self.unavailable_errors as error:
                self._report(f"{self.role} unavailable: {error}")
                self._idle(backoff_seconds(attempt, RETRY_MIN_SECONDS, RETRY_MAX_SECONDS))
                attempt += 1
                continue
            attempt = 0
            if self.fine_when_open:
                self._report(None)
            try:
                self._stream(handle, self._stopping)
            except self.lost_errors as error:
                self._report(f"{self.role} lost: {error}")
            finally:
                self._close(handle)

    def _report(self, problem: str | None) -> None:
        assert self._problems is not None
        self._problems.put(problem)

    def _open(self) -> Handle:
        raise NotImplementedError

    def _stream(self, handle: Handle, stopping: threading.Event) -> None:
        raise NotImplementedError

    def _close(self, handle: Handle) -> None:
        raise NotImplementedError

    def _idle(self, seconds: float) -> None:
        self._stopping.wait(seconds)
