"""Speaker playback: the device's clock pulls one mixed period at a time."""

from __future__ import annotations

import errno
import threading

import alsaaudio
import numpy as np

from vcalld.media.alsa.device import AlsaDeviceThread
from vcalld.media.alsa.pcm import Direction, PcmSpec, available_frames
from vcalld.media.alsa.runaway import RunawayCheck
from vcalld.media.mixer import Mixer
from vcalld.media.sources.base import ReportProblem
from vcalld.media.voice.processor import EchoReference

# ALSA restarts a playback device at the first frame written after an underrun; with just that
# one period queued, a board too busy to make the next in time underruns again at once. Silence
# after it gives this many periods of headroom.
RESTART_SILENCE_PERIODS = 2


class AlsaPlayback(AlsaDeviceThread):
    role = "speaker"

    def __init__(
        self,
        spec: PcmSpec,
        mixer: Mixer,
        report: ReportProblem,
        echo_reference: EchoReference | None = None,
    ) -> None:
        super().__init__(Direction.PLAYBACK, spec, report)
        self._mixer = mixer
        self._echo_reference = echo_reference
        self._silence = np.zeros((spec.period_frames, spec.channels), np.int16)

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        buffer_frames = pcm.info()["buffer_size"]
        runaway = RunawayCheck(self.spec.rate)
        while not stopping.is_set():
            period = self._mixer.mix(self.spec.period_frames)
            written = self._play(pcm, period, buffer_frames)
            if written > 0:
                runaway.moved(written)
            elif written == -errno.EPIPE:
                # pyalsaaudio prepared the stream again but dropped the period. It is written
                # again before the silence, the order the echo reference already has it in.
                self._xrun()
                pcm.write(period)
                for _ in range(RESTART_SILENCE_PERIODS):
                    self._play(pcm, self._silence, buffer_frames)

    def _play(self, pcm: alsaaudio.PCM, period: np.ndarray, buffer_frames: int) -> int:
        """Writes one period, telling the echo reference what it is and when it sounds."""
        if self._echo_reference is not None:
            queued = buffer_frames - min(buffer_frames, available_frames(pcm))
            self._echo_reference.played(period.reshape(-1), queued)
        written: int = pcm.write(period)
        return written
