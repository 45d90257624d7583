"""The display's own thread: it keeps the screen open (reopening a lost one) and draws a new
screen when a picture or the call changed, at most once per refresh of the display."""

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
from vcalld.media.display.compositor import compose
from vcalld.media.display.layout import Rect
from vcalld.media.display.sdl import DisplayError, SdlScreen
from vcalld.media.display.tiles import Tiles
from vcalld.media.sources.base import ReportProblem

FALLBACK_REFRESH_HZ = 60  # a display that does not say (offscreen)
REDRAW_SECONDS = 0.5  # without news: a tile whose pictures stopped must turn "camera off"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screenshot:
    pixels: np.ndarray  # as the screen shows it: height x width x RGB
    tiles: list[Rect]  # where each remote participant's tile is, before rotation


class ScreenThread(DeviceThread[SdlScreen]):
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

    def screenshot(self) -> Future[Screenshot]:
        """Any thread: the next screen drawn, as shown."""
        future: Future[Screenshot] = Future()
        self._screenshots.put(future)
        self._tiles.changed.set()
        return future

    def _open(self) -> SdlScreen:
        screen = SdlScreen(
            self._config.driver, self._config.width, self._config.height, self._config.rotation
        )
        try:
            screen.open()
        except DisplayError:
            screen.close()
            raise
        width, height = screen.output
        log.info(
            "display: %dx%d at %s Hz, %s renderer%s, turned %d°",
            width,
            height,
            screen.refresh_hz or "unknown",
            screen.renderer_name,
            " with vsync" if screen.vsync else "",
            self._config.rotation,
        )
        return screen

    def _close(self, screen: SdlScreen) -> None:
        screen.close()

    def _stream(self, screen: SdlScreen, stopping: threading.Event) -> None:
        period = 1 / (screen.refresh_hz or FALLBACK_REFRESH_HZ)
        shown_keys: set[str] = set()
        next_at = time.monotonic()
        while not stopping.is_set():
            self._tiles.changed.wait(REDRAW_SECONDS)
            self._tiles.changed.clear()
            waiting = self._take_screenshots()  # answered with a screen composed after asking
            remote, own = self._tiles.views()
            keys = {view.key for view in remote} | ({own.key} if own else set())
            for gone in shown_keys - keys:
                screen.forget(gone)
            shown_keys = keys
            tiles = compose(screen, remote, own, self._idle_text())
            pixels = screen.present(capture=bool(waiting))
            for future in waiting:
                assert pixels is not None
                future.set_result(Screenshot(pixels, tiles))
            self.shown += 1
            screen.pump()
            # Paced here even with vsync: some renderers say they wait for the refresh and do
            # not. After a present that did wait, this waits about nothing.
            next_at = max(next_at + period, time.monotonic())
            stopping.wait(max(0.0, next_at - time.monotonic()))

    def _take_screenshots(self) -> list[Future[Screenshot]]:
        taken = []
        while True:
            try:
                taken.append(self._screenshots.get_nowait())
            except queue.Empty:
                return taken
