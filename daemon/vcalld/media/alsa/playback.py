"""Speaker playback: the device's clock pulls one mixed period at a time."""

from __future__ import annotations

import errno
import logging
import threading

import alsaaudio

from vcalld.media.alsa.device import DeviceThread
from vcalld.media.alsa.pcm import Direction, PcmSpec, available_frames
from vcalld.media.mixer import Mixer
from vcalld.media.sources.base import ReportProblem
from vcalld.media.voice.processor import EchoReference

log = logging.getLogger(__name__)


class AlsaPlayback(DeviceThread):
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
        self.underruns = 0

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        buffer_frames = pcm.info()["buffer_size"]
        while not stopping.is_set():
            period = self._mixer.mix(self.spec.period_frames)
            if self._echo_reference is not None:
                queued = buffer_frames - min(buffer_frames, available_frames(pcm))
                self._echo_reference.played(period.reshape(-1), queued)
            if pcm.write(period) == -errno.EPIPE:
                # pyalsaaudio prepared the stream again but dropped the period: write it anew.
                self.underruns += 1
                log.info(
                    "speaker underrun (%d so far): the loop or the mixer was late", self.underruns
                )
                pcm.write(period)
