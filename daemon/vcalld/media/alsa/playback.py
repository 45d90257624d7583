"""Speaker playback: the device's clock pulls one mixed period at a time."""

from __future__ import annotations

import errno
import logging
import threading

import alsaaudio

from vcalld.media.alsa.device import DeviceThread
from vcalld.media.alsa.pcm import Direction, PcmSpec
from vcalld.media.mixer import Mixer
from vcalld.media.sources.base import ReportProblem

log = logging.getLogger(__name__)


class AlsaPlayback(DeviceThread):
    role = "speaker"

    def __init__(self, spec: PcmSpec, mixer: Mixer, report: ReportProblem) -> None:
        super().__init__(Direction.PLAYBACK, spec, report)
        self._mixer = mixer
        self.underruns = 0

    def _stream(self, pcm: alsaaudio.PCM, stopping: threading.Event) -> None:
        while not stopping.is_set():
            period = self._mixer.mix(self.spec.period_frames)
            if pcm.write(period) == -errno.EPIPE:
                # pyalsaaudio prepared the stream again but dropped the period: write it anew.
                self.underruns += 1
                log.info(
                    "speaker underrun (%d so far): the loop or the mixer was late", self.underruns
                )
                pcm.write(period)
