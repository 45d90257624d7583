"""The microphone: an ALSA capture device as an audio source."""

from __future__ import annotations

import asyncio

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.alsa.capture import AlsaCapture
from vcalld.media.alsa.pcm import PcmSpec
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, ReportProblem
from vcalld.media.voice.processor import VoiceProcessor

CAPTURE_SLOTS = 10  # periods waiting for a busy loop before the oldest are dropped


class AlsaSource:
    kind = "audio"

    def __init__(self, config: VideoConfig | AudioConfig) -> None:
        if not isinstance(config, AudioConfig):
            raise TypeError("alsa is an audio source")
        self._spec = PcmSpec.of(
            config.device, config.sample_rate, config.channels, config.period_frames
        )
        self._voice: VoiceProcessor | None = None

    def process_voice(self, processor: VoiceProcessor) -> None:
        self._voice = processor

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        frames = LoopHandoff(asyncio.get_running_loop(), publish, CAPTURE_SLOTS)
        await AlsaCapture(self._spec, frames.put, report, self._voice).run()
