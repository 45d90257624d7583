"""Remote participants' audio on an ALSA playback device, mixed into one stream."""

from __future__ import annotations

from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame
from av.audio.resampler import AudioResampler

from vcalld.config.models import SpeakerConfig
from vcalld.media.alsa.pcm import PcmSpec
from vcalld.media.alsa.playback import AlsaPlayback
from vcalld.media.layout import layout_of, s16_samples
from vcalld.media.mixer import Mixer
from vcalld.media.sources.base import ReportProblem
from vcalld.media.voice.processor import VoiceProcessor

PREFILL_SECONDS = 0.04  # jitter a participant's FIFO absorbs before it plays
CEILING_SECONDS = 0.2  # beyond this the FIFO is cut back: drift must not become latency


class Speaker:
    def __init__(
        self, config: SpeakerConfig, report: ReportProblem, voice: VoiceProcessor | None = None
    ) -> None:
        """`voice`: the microphone's processing, which hears what is played as its echo."""
        rate = config.sample_rate
        self.rate: int = rate
        self.channels: int = config.channels
        self._spec = PcmSpec.of(config.device, rate, config.channels, config.period_frames)
        self._layout = layout_of(config.channels)
        self._mixer = Mixer(
            rate,
            config.channels,
            prefill=int(rate * PREFILL_SECONDS),
            ceiling=int(rate * CEILING_SECONDS),
        )
        self._mixer.master_volume = config.volume
        self._report = report
        self._echo_reference = voice.echo_reference(rate, config.channels) if voice else None

    async def run(self) -> None:
        """Keep the device playing until cancelled."""
        await AlsaPlayback(self._spec, self._mixer, self._report, self._echo_reference).run()

    async def play(self, participant_id: str, track: MediaStreamTrack) -> None:
        """Feed one participant's audio track into the mix until it ends."""
        resampler = AudioResampler(format="s16", layout=self._layout, rate=self._spec.rate)
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                for resampled in resampler.resample(frame):
                    self._mixer.push(participant_id, s16_samples(resampled))
        except MediaStreamError:
            return
        finally:
            self._mixer.remove(participant_id)

    def push(self, stream: str, samples: np.ndarray[Any, Any]) -> None:
        """Audio of another kind than a participant's (the audio mix), at the device format."""
        self._mixer.push(stream, samples)

    def remove(self, stream: str) -> None:
        """Cut `stream` off now, with what it had queued."""
        self._mixer.remove(stream)

    def set_volume(self, participant_id: str | None, volume: float) -> None:
        """One participant's volume, or the master volume when `participant_id` is None."""
        if participant_id is None:
            self._mixer.master_volume = volume
        else:
            self._mixer.set_volume(participant_id, volume)

    def forget(self, participant_id: str) -> None:
        self._mixer.forget(participant_id)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per participant: queued audio, underruns, dropped drift, level, volume."""
        return self._mixer.snapshot()
