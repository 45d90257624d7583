"""A video file or stream as a video source: played at its own pace, looped, scaled.

A file plays at the rate its timestamps say and starts again at its end; a stream (rtsp://,
http(s)://) plays as it arrives and is reopened when it ends or breaks. Frames are scaled to
`[video]`'s width and height, up to 4K, in the reading thread. Until the file or stream can
be opened, black goes out and the state says why, as for a missing camera.
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

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.frames import black_while_away
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, ReportProblem
from vcalld.media.sources.ffmpeg_input import FFmpegInput
from vcalld.media.timeline import VIDEO_CLOCK

OPEN_TIMEOUT_SECONDS = 10.0
STREAM_OPTIONS = {"rtsp_transport": "tcp"}  # RTSP over the control connection: no UDP ports


class FileReader(FFmpegInput):
    role = "video file"

    def __init__(
        self, config: VideoConfig, deliver: Callable[[VideoFrame], None], report: ReportProblem
    ) -> None:
        super().__init__("video-file", deliver, report)
        self._config = config
        self._epoch = time.monotonic()

    def _open(self) -> Any:
        options = STREAM_OPTIONS if self._config.uri.startswith("rtsp://") else {}
        container = av.open(self._config.uri, options=options, timeout=OPEN_TIMEOUT_SECONDS)
        if not container.streams.video:
            container.close()
            raise av.error.InvalidDataError(0, f"{self._config.uri} holds no video")
        return container

    def _stream(self, handle: Any, stopping: threading.Event) -> None:
        """One pass through the file (its end returns, and the file is opened again)."""
        config = self._config
        started, first = time.monotonic(), None
        for index, picture in enumerate(handle.decode(video=0)):
            at = picture.time if picture.time is not None else index / config.fps
            first = at if first is None else first
            if stopping.wait(max(0.0, started + (at - first) - time.monotonic())):
                return
            if index == 0:
                self._report(None)
            frame = picture.reformat(width=config.width, height=config.height, format="yuv420p")
            self._send(frame)

    def _idle(self, seconds: float) -> None:
        config = self._config
        size = (config.width, config.height)
        black_while_away(self._stopping, seconds, config.fps, size, self._send)

    def _send(self, frame: VideoFrame) -> None:
        frame.pts = round((time.monotonic() - self._epoch) * VIDEO_CLOCK)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self._deliver(frame)


class FileSource:
    kind = "video"

    def __init__(self, config: VideoConfig | AudioConfig) -> None:
        if not isinstance(config, VideoConfig):
            raise TypeError("file is a video source")
        self._config = config

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        frames = LoopHandoff(asyncio.get_running_loop(), publish, depth=1)
        await FileReader(self._config, frames.put, report).run()
