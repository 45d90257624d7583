"""Moving colour bars with a visible and machine-readable frame counter."""

from __future__ import annotations

from fractions import Fraction

from av import VideoFrame

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.pacing import Pacer
from vcalld.media.pattern import PatternPainter
from vcalld.media.sources.base import Publish, ReportProblem

VIDEO_CLOCK = 90000


class TestPatternSource:
    kind = "video"

    def __init__(self, config: VideoConfig | AudioConfig) -> None:
        if not isinstance(config, VideoConfig):
            raise TypeError("test-pattern is a video source")
        self._config = config
        self._painter = PatternPainter(config.width, config.height)

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        pacer = Pacer(self._config.fps)
        ticks_per_frame = VIDEO_CLOCK // self._config.fps
        while True:
            index = await pacer.next()
            frame = VideoFrame.from_ndarray(self._painter.paint(index), format="yuv420p")
            frame.pts = index * ticks_per_frame
            frame.time_base = Fraction(1, VIDEO_CLOCK)
            publish(frame)
