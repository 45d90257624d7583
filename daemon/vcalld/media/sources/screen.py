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

from vcalld.config.models import AudioConfig, ScreenShareConfig, VideoConfig
from vcalld.media.frames import black_while_away
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, ReportProblem
from vcalld.media.sources.ffmpeg_input import FFmpegInput


class ScreenGrab(FFmpegInput):
    role = "screen"

    def __init__(
        self,
        config: ScreenShareConfig,
        deliver: Callable[[VideoFrame], None],
        report: ReportProblem,
    ) -> None:
        super().__init__("screen-grab", deliver, report)
        self._config = config
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
            self._send(frame)
            self._size = (frame.width, frame.height)

    def _idle(self, seconds: float) -> None:
        size = (self._config.width or self._size[0], self._config.height or self._size[1])
        black_while_away(self._stopping, seconds, self._config.fps, size, self._send)

    def _send(self, frame: VideoFrame) -> None:
        self._deliver(_stamped(frame))


def _stamped(frame: VideoFrame) -> VideoFrame:
    """Grabbed pictures and the black between them on one clock (x11grab's is the wall's)."""
    frame.pts, frame.time_base = round(time.monotonic() * 1_000_000), Fraction(1, 1_000_000)
    return frame


class ScreenSource:
    """The screen as a video source: for `start-screen-share` (`[screen_share]`), or as the
    configured source itself (`video.source = "screen"`, `video.uri` the display)."""

    kind = "video"

    def __init__(self, config: ScreenShareConfig | VideoConfig | AudioConfig) -> None:
        if isinstance(config, AudioConfig):
            raise TypeError("screen is a video source")
        if isinstance(config, VideoConfig):
            config = ScreenShareConfig(
                display=config.uri or ":0",
                width=config.width,
                height=config.height,
                fps=config.fps,
            )
        self._config = config

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        frames = LoopHandoff(asyncio.get_running_loop(), publish, depth=1)
        await ScreenGrab(self._config, frames.put, report).run()
