"""A continuous sine tone, for checking that audio arrives at the right pitch."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from av import AudioFrame

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.layout import layout_of
from vcalld.media.pacing import Pacer
from vcalld.media.sources.base import Publish, ReportProblem

FRAME_SECONDS = Fraction(1, 50)
AMPLITUDE = 0.3


class ToneSource:
    kind = "audio"

    def __init__(self, config: VideoConfig | AudioConfig) -> None:
        if not isinstance(config, AudioConfig):
            raise TypeError("tone is an audio source")
        self._config = config

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        rate = self._config.sample_rate
        channels = self._config.channels
        samples = int(rate * FRAME_SECONDS)
        layout = layout_of(channels)
        step = 2 * np.pi * self._config.tone_frequency_hz / rate
        pacer = Pacer(float(1 / FRAME_SECONDS))
        while True:
            index = await pacer.next()
            start = index * samples
            phase = step * np.arange(start, start + samples)
            wave = (AMPLITUDE * 32767 * np.sin(phase)).astype(np.int16)
            interleaved = np.repeat(wave, channels).reshape(1, -1)
            frame = AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            publish(frame)
