"""The microphone's voice processing, with what the speaker plays as the echo reference.

The speaker's thread queues what it is about to play (`EchoReference`); the microphone's
thread takes one block of it for each block it captures and hands both to WebRTC's audio
processing module in lockstep (see `_webrtc_apm.cpp` for why not from two threads). The echo
path's delay (the speaker's buffer, the room, the capture buffer) is reported from what the
devices say they hold; the canceller finds the rest in the signals (delay-agnostic mode).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from vcalld.config import VcalldConfig
from vcalld.config.models import VoiceConfig
from vcalld.media.fifo import SampleFifo
from vcalld.media.sources.base import MediaSource, Microphone
from vcalld.media.voice._webrtc_apm import AudioProcessing
from vcalld.media.voice.blocks import Reblocker, Samples

if TYPE_CHECKING:
    from vcalld.media.voice._webrtc_apm import EchoMetrics

NATIVE_RATES = (16000, 32000, 48000)  # the module's rates; others are processed at 48 kHz
# More than this of the speaker waiting for the microphone means the two devices' clocks
# drift apart (or the microphone stalled): the oldest is dropped, a slip the canceller
# re-adapts to, instead of an echo path that grows without end.
MAX_QUEUED_SECONDS = 0.1


class EchoReference:
    def __init__(self, rate: int, channels: int, target_rate: int) -> None:
        self._blocks = Reblocker(rate, channels, target_rate, 1)
        self._rate = rate
        self._limit = int(MAX_QUEUED_SECONDS * target_rate)
        self._fifo = SampleFifo()
        self._lock = threading.Lock()
        self.delay_ms = 0
        self.dropped = 0  # samples at the target rate

    def played(self, period: Samples, queued_frames: int) -> None:
        """`period` goes to the device now, behind `queued_frames` not yet played."""
        blocks = self._blocks.push(period)
        with self._lock:
            self.delay_ms = round(1000 * queued_frames / self._rate)
            self._fifo.push(blocks)
            if self._fifo.queued > self._limit:
                excess = self._fifo.queued - self._limit
                self._fifo.take(excess)
                self.dropped += excess

    def take(self, samples: int) -> Samples:
        """The oldest `samples` played, with silence where the speaker played nothing."""
        with self._lock:
            taken = self._fifo.take(samples)
        if taken is not None and len(taken) == samples:
            return taken
        padded = np.zeros(samples, np.int16)
        if taken is not None:
            padded[: len(taken)] = taken
        return padded


class VoiceProcessor:
    """Periods at the microphone's format in, processed audio out at `rate` (the device's
    rate when the module supports it) and the device's channel count."""

    def __init__(self, config: VoiceConfig, rate: int, channels: int, echo_reference: bool) -> None:
        """`echo_reference`: whether a speaker will feed one; without it there is no echo to
        cancel, whatever the config says."""
        self.rate = rate if rate in NATIVE_RATES else max(NATIVE_RATES)
        self.channels = channels
        self.cancels_echo = config.echo_cancellation and echo_reference
        self._processing = AudioProcessing(
            self.rate,
            channels,
            echo_cancellation=self.cancels_echo,
            noise_suppression=config.noise_suppression,
            gain_control=config.gain_control,
            high_pass_filter=config.high_pass_filter,
        )
        self._device_rate = rate
        self._blocks = Reblocker(rate, channels, self.rate, channels)
        self._reference: EchoReference | None = None

    def echo_reference(self, rate: int, channels: int) -> EchoReference | None:
        """The queue the speaker feeds (at its own format), or None when echo is not
        cancelled."""
        if self.cancels_echo:
            self._reference = EchoReference(rate, channels, self.rate)
        return self._reference

    def process(self, period: Samples, queued_frames: int) -> Samples:
        """`period` was captured `queued_frames` (device frames, its own included) ago."""
        blocks = self._blocks.push(period)
        if not len(blocks):
            return blocks
        delay_ms = round(1000 * queued_frames / self._device_rate)
        render: Samples | bytes = b""  # the module reads it only when it cancels echo
        if self._reference is not None:
            delay_ms += self._reference.delay_ms
            render = self._reference.take(len(blocks) // self.channels)
        processed = self._processing.process(blocks, render, delay_ms)
        return np.frombuffer(processed, np.int16)

    def echo_metrics(self) -> EchoMetrics | None:
        """The canceller's own estimates (ERL, ERLE, delay), or None when it is off."""
        return self._processing.echo_metrics() if self.cancels_echo else None


def process_microphone(config: VcalldConfig, source: MediaSource | None) -> VoiceProcessor | None:
    """Give `source` voice processing if it is a microphone and any stage is on; the speaker
    (if enabled) is then to feed the returned processor's echo reference."""
    stages = config.voice
    if not isinstance(source, Microphone) or not any(dict(stages).values()):
        return None
    audio = config.audio
    processor = VoiceProcessor(stages, audio.sample_rate, audio.channels, config.speaker.enabled)
    source.process_voice(processor)
    return processor
