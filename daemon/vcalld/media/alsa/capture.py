"""Microphone capture: one period at a time into frames stamped with a running sample count."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from fractions import Fraction

import alsaaudio
import numpy as np
from av import AudioFrame

from vcalld.media.alsa.device import DeviceThread
from vcalld.media.alsa.pcm import Direction, PcmSpec
from vcalld.media.sources.base import ReportProblem


class AlsaCapture(DeviceThread):
    """While the device is missing it emits silence at the device's pace, so the outgoing
    track never ends (an ended aiortc track kills its sender for good)."""

    role = "microphone"

    def __init__(
        self, spec: PcmSpec, emit: Callable[[AudioFrame], None], report: ReportProblem
    ) -> None:
        super().__init__(Direction.CAPTURE, spec, report)
        self._emit = emit
        self._layout = "mono" if spec.channels == 1 else "stereo"
        self._position = 0
        self.overruns = 0

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        while not stopping.is_set():
            length, data = pcm.read()
            if length == -errno.EPIPE:
                self.overruns += 1  # pyalsaaudio has already prepared the stream again
            elif length > 0:
                self._send(np.frombuffer(data, "<i2"))

    def _idle(self, seconds: float) -> None:
        silence = np.zeros(self.spec.period_frames * self.spec.channels, np.int16)
        for _ in range(max(1, round(seconds / self.spec.period_seconds))):
            if self._stopping.wait(self.spec.period_seconds):
                return
            self._send(silence)

    def _send(self, interleaved: np.ndarray) -> None:
        frame = AudioFrame.from_ndarray(
            interleaved.reshape(1, -1), format="s16", layout=self._layout
        )
        frame.sample_rate = self.spec.rate
        frame.pts = self._position
        frame.time_base = Fraction(1, self.spec.rate)
        self._position += len(interleaved) // self.spec.channels
        self._emit(frame)
