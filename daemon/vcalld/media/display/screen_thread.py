"""The display's own thread: it keeps a screen process running (starting a new one when the
display is lost) and sends it a new screen when a picture or the call changed, at most once per
refresh of the display."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from vcalld.config.models import DisplayConfig
from vcalld.media.device_thread import DeviceThread
from vcalld.media.display.layout import Rect
from vcalld.media.display.screen_client import ScreenProcess
from vcalld.media.display.sdl import DisplayError
from vcalld.media.display.tiles import Tiles
from vcalld.media.sources.base import ReportProblem

FALLBACK_REFRESH_HZ = 60  # a display that does not say (offscreen)
REDRAW_SECONDS = 0.5  # without news: a tile whose pictures stopped must turn "camera off"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screenshot:
    pixels: np.ndarray  # as the screen shows it: height x width x RGB
    tiles: list[Rect]  # where each remote participant's tile is, before rotation


class ScreenThread(DeviceThread[ScreenProcess]):
    role = "display"
    unavailable_errors = (DisplayError,)
    lost_errors = (DisplayError,)

    def __init__(
        self, config: DisplayConfig, tiles: Tiles, idle: Callable[[], str], report: ReportProblem
    ) -> None:
        super().__init__("display", report)
        self._config = config
        self._tiles = tiles
        self._idle_text = idle
        self._screenshots: queue.SimpleQueue[Future[Screenshot]] = queue.SimpleQueue()
        self.shown = 0  # screens drawn
        self.pid: int | None = None  # the screen process's, while the display is open

    def screenshot(self) -> Future[Screenshot]:
        """Any thread: the next screen drawn, as shown."""
        future: Future[Screenshot] = Future()
        self._screenshots.put(future)
        self._tiles.changed.set()
        return future

    def _open(self) -> ScreenProcess:
        process = ScreenProcess(self._config, self._stopping)
        opened = process.opened
        width, height = opened.output
        log.info(
            "display: %dx%d at %s Hz, %s renderer%s, turned %d°",
            width,
            height,
            opened.refresh_hz or "unknown",
            opened.renderer_name,
            " with vsync" if opened.vsync else "",
            self._config.rotation,
        )
        self.pid = process.pid
        return process

    def _close(self, process: ScreenProcess) -> None:
        self.pid = None
        process.close()

    def _stream(self, process: ScreenProcess, stopping: threading.Event) -> None:
        period = 1 / (process.opened.refresh_hz or FALLBACK_REFRESH_HZ)
        next_at = time.monotonic()
        while not stopping.is_set():
            self._tiles.changed.wait(REDRAW_SECONDS)
            self._tiles.changed.clear()
            waiting = self._take_screenshots()  # answered with a screen composed after asking
            remote, own = self._tiles.views()
            scene = process.sender.scene(remote, own, self._idle_text(), capture=bool(waiting))
            try:
                shown = process.show(scene)
            except DisplayError:
                self._put_back(waiting)
                raise
            for future in waiting:
                assert shown.pixels is not None
                future.set_result(Screenshot(shown.pixels, shown.tiles))
            self.shown += 1
            # Paced here even with vsync: some renderers say they wait for the refresh and do
            # not. After a present that did wait, this waits about nothing.
            next_at = max(next_at + period, time.monotonic())
            stopping.wait(max(0.0, next_at - time.monotonic()))

    def _put_back(self, waiting: list[Future[Screenshot]]) -> None:
        """Screenshots asked for while the display was lost wait for the next one."""
        for future in waiting:
            self._screenshots.put(future)

    def _take_screenshots(self) -> list[Future[Screenshot]]:
        taken = []
        while True:
            try:
                taken.append(self._screenshots.get_nowait())
            except queue.Empty:
                return taken
