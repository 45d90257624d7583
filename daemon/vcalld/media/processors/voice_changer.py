"""A voice changer: pitch shifted by semitones, tempo kept, by a phase vocoder.

Each hop of a quarter window, the spectrum's bins move to `factor` times their frequency and
their phases advance at the moved frequency, so every partial keeps its own continuity
(Bernsee's method). Latency is one window: 21 ms at 48 kHz.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from av import AudioFrame
from av.frame import Frame
from pydantic import BaseModel, ConfigDict, Field

from vcalld.media.fifo import SampleFifo
from vcalld.media.frames import timed_like
from vcalld.media.layout import s16_samples

OVERSAMPLING = 4  # hops per window
WINDOW_SECONDS = 0.02  # rounded up to a power of two of samples: 1024 at 48 kHz


class VoiceChangerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    semitones: float = Field(default=4.0, ge=-12, le=12, description="Up (+) or down (-).")


class _ChannelShifter:
    def __init__(self, window: int, factor: float) -> None:
        self._size = window
        self._hop = window // OVERSAMPLING
        self._factor = factor
        self._window = np.hanning(window)
        bins = np.arange(window // 2 + 1)
        self._bins = bins
        self._expected = 2 * np.pi * self._hop / window * bins  # phase advance per hop
        self._last_phase = np.zeros(len(bins))
        self._sum_phase = np.zeros(len(bins))
        self._input = np.zeros(window)
        self._accumulator = np.zeros(window)
        # Overlap-add of the squared Hann window at four hops per window: 1.5.
        self._gain = 1.0 / (OVERSAMPLING * float(np.mean(self._window**2)))

    def hop(self, fresh: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """One hop of new input in, one hop of shifted output out."""
        self._input = np.concatenate([self._input[self._hop :], fresh])
        spectrum = np.fft.rfft(self._input * self._window)
        magnitude, phase = np.abs(spectrum), np.angle(spectrum)
        deviation = phase - self._last_phase - self._expected
        self._last_phase = phase
        deviation = (deviation + np.pi) % (2 * np.pi) - np.pi
        true_bins = self._bins + deviation * OVERSAMPLING / (2 * np.pi)

        target = (self._bins * self._factor).astype(int)
        inside = target < len(self._bins)
        moved_magnitude = np.zeros(len(self._bins))
        np.add.at(moved_magnitude, target[inside], magnitude[inside])
        moved_bins = np.zeros(len(self._bins))
        moved_bins[target[inside]] = true_bins[inside] * self._factor

        advance = (moved_bins - self._bins) * 2 * np.pi / OVERSAMPLING + self._expected
        self._sum_phase = (self._sum_phase + advance) % (2 * np.pi)
        frame = np.fft.irfft(moved_magnitude * np.exp(1j * self._sum_phase), self._size)
        self._accumulator += frame * self._window * self._gain
        out = self._accumulator[: self._hop].copy()
        self._accumulator = np.concatenate([self._accumulator[self._hop :], np.zeros(self._hop)])
        return out


class VoiceChanger:
    kind: ClassVar[str] = "audio"
    Options: ClassVar[type[BaseModel]] = VoiceChangerOptions

    def __init__(self, options: dict[str, Any]) -> None:
        self._factor = 2 ** (VoiceChangerOptions.model_validate(options).semitones / 12)
        self._format: tuple[int, int] | None = None
        self._shifters: list[_ChannelShifter] = []
        self._pending = SampleFifo()
        self._ready = SampleFifo()
        self._hop = 0

    def process(self, frame: Frame) -> Frame:
        assert isinstance(frame, AudioFrame)
        channels = frame.layout.nb_channels
        if self._format != (frame.sample_rate, channels):
            self._start(frame.sample_rate, channels)
        self._pending.push(s16_samples(frame).astype(np.float64) / 32768)
        while self._pending.queued >= self._hop:
            fresh = self._pending.take(self._hop)
            assert fresh is not None
            shifted = [shifter.hop(fresh[:, c]) for c, shifter in enumerate(self._shifters)]
            self._ready.push(np.stack(shifted, axis=1))
        out = self._ready.take(frame.samples)
        assert out is not None and len(out) == frame.samples  # the window's worth primed it
        pcm = np.clip(np.rint(out * 32768), -32768, 32767).astype(np.int16)
        changed = AudioFrame.from_ndarray(
            pcm.reshape(1, -1), format="s16", layout=frame.layout.name
        )
        return timed_like(changed, frame)

    def _start(self, rate: int, channels: int) -> None:
        window = 1 << int(np.ceil(np.log2(rate * WINDOW_SECONDS)))
        self._format, self._hop = (rate, channels), window // OVERSAMPLING
        self._shifters = [_ChannelShifter(window, self._factor) for _ in range(channels)]
        self._pending, self._ready = SampleFifo(), SampleFifo()
        self._ready.push(np.zeros((window, channels)))  # the latency, so output never runs dry
