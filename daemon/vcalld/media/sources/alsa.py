"""The microphone: an ALSA capture device as an audio source."""

from __future__ import annotations

import asyncio

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.alsa.capture import AlsaCapture
from vcalld.media.alsa.pcm import PcmSpec
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, ReportProblem

CAPTURE_SLOTS = 10  # periods waiting for a busy loop before the oldest are dropped


class AlsaSource:
    kind = "audio"

    def __init__(self, config: VideoConfig | AudioConfig) -> None:
        if not isinstance(config, AudioConfig):
            raise TypeError("alsa is an audio source")
        self._spec = PcmSpec(
            device=config.device,
            rate=config.sample_rate,
            channels=config.channels,
            period_frames=config.period_frames or config.sample_rate // 50,
        )

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        loop = asyncio.get_running_loop()
        frames = LoopHandoff(loop, publish, CAPTURE_SLOTS)
        problems: LoopHandoff[str | None] = LoopHandoff(loop, report, depth=1)  # latest wins
        await AlsaCapture(self._spec, frames.put, problems.put).run()
