"""The screen: an X11 display grabbed by FFmpeg's x11grab, for screen sharing.

x11grab reads the X server's framebuffer at the configured rate (it waits for each frame's
time itself); each picture is scaled to the configured size and converted to yuv420p in the
grabbing thread. A display that cannot be opened, or that goes away, is retried with backoff
and reported like a missing camera.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from av import VideoFrame

from vcalld.config.models import ScreenShareConfig
from vcalld.media.device_thread import DeviceThread
from vcalld.media.frames import black_video
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, ReportProblem


class ScreenGrab(DeviceThread[Any]):
    role = "screen"
    fine_when_open = False  # fine once a picture arrives
    unavailable_errors = (av.FFmpegError, OSError)
    lost_errors = (av.FFmpegError, OSError)

    def __init__(
        self,
        config: ScreenShareConfig,
        deliver: Callable[[VideoFrame], None],
        report: ReportProblem,
    ) -> None:
        super().__init__("screen-grab", report)
        self._config = config
        self._deliver = deliver
        self._size = (640, 480)  # of the black sent while the display is away, until grabbed

    def _open(self) -> Any:
        options = {"framerate": str(self._config.fps), "draw_mouse": str(int(self._config.mouse))}
        return av.open(self._config.display, format="x11grab", options=options)

    def _stream(self, handle: Any, stopping: threading.Event) -> None:
        config = self._config
        for index, picture in enumerate(handle.decode(video=0)):
            if stopping.is_set():
                return
            if index == 0:
                self._report(None)
            frame = picture.reformat(
                width=config.width or picture.width // 2 * 2,
                height=config.height or picture.height // 2 * 2,
                format="yuv420p",
            )
            self._deliver(_stamped(frame))
            self._size = (frame.width, frame.height)

    def _close(self, handle: Any) -> None:
        handle.close()

    def _idle(self, seconds: float) -> None:
        """Black at the share's rate while the display is away, as a missing camera sends:
        the far end sees the share is off, not a frozen picture."""
        config = self._config
        size = (config.width or self._size[0], config.height or self._size[1])
        deadline = time.monotonic() + seconds
        while not self._stopping.wait(min(1 / config.fps, max(0.0, deadline - time.monotonic()))):
            self._deliver(_stamped(black_video(*size)))
            if time.monotonic() >= deadline:
                return


def _stamped(frame: VideoFrame) -> VideoFrame:
    """Grabbed pictures and the black between them on one clock (x11grab's is the wall's)."""
    frame.pts, frame.time_base = round(time.monotonic() * 1_000_000), Fraction(1, 1_000_000)
    return frame


class ScreenSource:
    kind = "video"

    def __init__(self, config: ScreenShareConfig) -> None:
        self._config = config

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        frames = LoopHandoff(asyncio.get_running_loop(), publish, depth=1)
        await ScreenGrab(self._config, frames.put, report).run()
