"""Microphone capture: one period at a time, voice-processed in this thread when asked, into
frames stamped with a running sample count."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from fractions import Fraction

import alsaaudio
import numpy as np
from av import AudioFrame

from vcalld.media.alsa.device import AlsaDeviceThread
from vcalld.media.alsa.pcm import Direction, PcmSpec, available_frames
from vcalld.media.alsa.runaway import RunawayCheck
from vcalld.media.layout import layout_of
from vcalld.media.sources.base import ReportProblem
from vcalld.media.voice.processor import VoiceProcessor


class AlsaCapture(AlsaDeviceThread):
    """While the device is missing it emits silence at the device's pace, so the outgoing
    track never ends (an ended aiortc track kills its sender for good)."""

    role = "microphone"

    def __init__(
        self,
        spec: PcmSpec,
        emit: Callable[[AudioFrame], None],
        report: ReportProblem,
        voice: VoiceProcessor | None = None,
    ) -> None:
        super().__init__(Direction.CAPTURE, spec, report)
        self._emit = emit
        self._voice = voice
        self._rate = voice.rate if voice is not None else spec.rate
        self._layout = layout_of(spec.channels)
        self._position = 0

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        runaway = RunawayCheck(self.spec.rate)
        while not stopping.is_set():
            length, data = pcm.read()
            if length == -errno.EPIPE:
                self._xrun()  # pyalsaaudio has already prepared the stream again
            elif length > 0:
                runaway.moved(length)
                # How long ago the period was heard matters only to the echo canceller: no
                # device query per period without it.
                age = length + available_frames(pcm) if self._voice is not None else length
                self._send(np.frombuffer(data, "<i2"), age)

    def _idle(self, seconds: float) -> None:
        silence = np.zeros(self.spec.period_frames * self.spec.channels, np.int16)
        for _ in range(max(1, round(seconds / self.spec.period_seconds))):
            if self._stopping.wait(self.spec.period_seconds):
                return
            self._send(silence, self.spec.period_frames)

    def _send(self, interleaved: np.ndarray, age_frames: int) -> None:
        """`age_frames`: how long ago, in device frames, the period's first sample was heard."""
        if self._voice is not None:
            interleaved = self._voice.process(interleaved, age_frames)
            if not len(interleaved):
                return
        frame = AudioFrame.from_ndarray(
            interleaved.reshape(1, -1), format="s16", layout=self._layout
        )
        frame.sample_rate = self._rate
        frame.pts = self._position
        frame.time_base = Fraction(1, self._rate)
        self._position += len(interleaved) // self.spec.channels
        self._emit(frame)
