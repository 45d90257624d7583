"""One mix playing: its audio added to each outgoing frame and copied to the speaker.

The outgoing audio's frames pace the mix: each frame takes as much of the mix as it lasts, and
what it takes goes to the speaker too, whose own FIFO absorbs the two devices' jitter and
drift like a remote participant's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from av import AudioFrame
from av.audio.resampler import AudioResampler

from vcalld.media.audio_mix.decoder import RATE, End, MixDecoder, Part, Samples
from vcalld.media.fifo import SampleFifo
from vcalld.media.frames import timed_like
from vcalld.media.layout import layout_of, s16_samples
from vcalld.state import AudioMix, AudioMixStatus

MIX_STREAM = "@mix"  # the speaker's stream of the mix; no participant's id starts with "@"
S16_MIN, S16_MAX = -32768, 32767


class MixSpeaker(Protocol):
    """What the mix needs of the speaker."""

    rate: int
    channels: int

    def push(self, stream: str, samples: Samples, /) -> None: ...

    def remove(self, stream: str, /) -> None: ...

    def set_volume(self, stream: str | None, volume: float, /) -> None: ...


class Converted:
    """The decoder's parts in one consumer's rate and channel count, taken in any size.

    Channels are matched here, not by FFmpeg, whose upmix puts mono 3 dB down on each side:
    an announcement is to sound as loud on a stereo speaker as on a mono one."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self._resampler: AudioResampler | None = None
        self._source_channels = 0
        self._fifo = SampleFifo()

    @property
    def queued(self) -> int:
        return self._fifo.queued

    def push(self, samples: Samples) -> None:
        channels = samples.shape[1]
        if self._resampler is None or channels != self._source_channels:
            layout = layout_of(channels)
            self._resampler = AudioResampler(format="s16", layout=layout, rate=self.rate)
            self._source_channels = channels
        frame = AudioFrame.from_ndarray(
            samples.reshape(1, -1), format="s16", layout=layout_of(channels)
        )
        frame.sample_rate = RATE
        for resampled in self._resampler.resample(frame):
            self._fifo.push(_to_channels(s16_samples(resampled), self.channels))

    def take(self, frames: int) -> Samples | None:
        return self._fifo.take(frames)


class MixPlayer:
    def __init__(
        self,
        decoder: MixDecoder,
        speaker: MixSpeaker | None,
        *,
        call_volume: float,
        local_volume: float,
        changed: Callable[[], None],
    ) -> None:
        """`changed` is called when the status, whole second, loop or an error changes."""
        self.decoder = decoder
        self._speaker = speaker
        self.call_volume = call_volume
        self.local_volume = local_volume
        self._changed = changed
        self.status = AudioMixStatus.OPENING
        self.position = 0.0
        self.loop = 1
        self.error: str | None = None
        self.underruns = 0  # frames the decoder had not kept up with (a slow stream)
        self._call: Converted | None = None
        self._local = Converted(speaker.rate, speaker.channels) if speaker else None
        if speaker is not None:
            speaker.set_volume(MIX_STREAM, local_volume)

    def mix_into(self, frame: AudioFrame) -> AudioFrame:
        """`frame` with the mix's next stretch of the same length added at `call_volume`."""
        if self.status not in (AudioMixStatus.OPENING, AudioMixStatus.PLAYING):
            return frame
        channels = frame.layout.nb_channels
        if self._call is None or (self._call.rate, self._call.channels) != (
            frame.sample_rate,
            channels,
        ):
            self._call = Converted(frame.sample_rate, channels)
        while self._call.queued < frame.samples and self._next_part(self._call):
            pass
        mix = self._call.take(frame.samples)
        if mix is None or len(mix) < frame.samples:
            self.underruns += self.status is AudioMixStatus.PLAYING
        if mix is None or not self.call_volume:
            return frame
        return _added(frame, mix, self.call_volume)

    def _next_part(self, call: Converted) -> bool:
        """Move one decoded part on to the call and the speaker; False when there is none."""
        item = self.decoder.next()
        if item is None:
            return False
        if item.generation != self.decoder.generation:
            return True  # decoded before a seek
        if isinstance(item, End):
            self.decoder.close()
            self._end(AudioMixStatus.FAILED if item.error else AudioMixStatus.FINISHED, item.error)
            return False
        call.push(item.samples)
        if self._local is not None and self._speaker is not None:
            self._local.push(item.samples)
            local = self._local.take(self._local.queued)
            if local is not None:
                self._speaker.push(MIX_STREAM, local)
        self._advance(item)
        return True

    def _advance(self, part: Part) -> None:
        before = (int(self.position), self.loop, self.status)
        self.position = part.start + len(part.samples) / RATE
        self.loop = part.loop
        self.status = AudioMixStatus.PLAYING
        if (int(self.position), self.loop, self.status) != before:
            self._changed()

    def pause(self, paused: bool) -> None:
        """A paused mix takes nothing, and the speaker's copy runs out within its FIFO."""
        if self.status.ended:
            return
        playing = AudioMixStatus.PLAYING if self.decoder.opened.is_set() else AudioMixStatus.OPENING
        self.status = AudioMixStatus.PAUSED if paused else playing
        self._changed()

    def seek(self, seconds: float) -> None:
        """Go to `seconds`; what was decoded or queued for the speaker is dropped."""
        self.decoder.seek(seconds)
        self._call = None
        if self._local is not None and self._speaker is not None:
            self._local = Converted(self._speaker.rate, self._speaker.channels)
            self._speaker.remove(MIX_STREAM)
        self.position = seconds
        self._changed()

    def set_volumes(self, call: float | None, local: float | None) -> None:
        if call is not None:
            self.call_volume = call
        if local is not None:
            self.local_volume = local
            if self._speaker is not None:
                self._speaker.set_volume(MIX_STREAM, local)
        self._changed()

    def stop(self) -> None:
        self._end(AudioMixStatus.STOPPED, None)

    def fail(self, error: str) -> None:
        self._end(AudioMixStatus.FAILED, error)

    def _end(self, status: AudioMixStatus, error: str | None) -> None:
        if self.status.ended:
            return
        self.status, self.error = status, error
        if self._speaker is not None and status is not AudioMixStatus.FINISHED:
            self._speaker.remove(MIX_STREAM)  # a finished mix plays out what is queued
        self._changed()

    def snapshot(self) -> AudioMix:
        duration = self.decoder.duration
        return AudioMix(
            source=self.decoder.source.shown,
            status=self.status,
            position_seconds=round(self.position, 1),
            duration_seconds=round(duration, 1) if duration is not None else None,
            loop=self.loop,
            loops=self.decoder.loops,
            call_volume=self.call_volume,
            local_volume=self.local_volume,
            error=self.error,
        )


def _to_channels(samples: Samples, channels: int) -> Samples:
    """A copy with `channels` (1 or 2): mono on both sides, or the mean of the two."""
    if samples.shape[1] == channels:
        return samples.copy()
    if channels == 2:
        return np.repeat(samples, 2, axis=1)
    mean: Samples = samples.mean(axis=1, dtype=np.float32).round().astype(np.int16)[:, None]
    return mean


def _added(frame: AudioFrame, mix: Samples, volume: float) -> AudioFrame:
    """A new frame: `frame` plus `mix` (as long or shorter) at `volume`, clipped to s16."""
    total: np.ndarray[Any, np.dtype[np.float32]] = s16_samples(frame).astype(np.float32)
    total[: len(mix)] += mix * np.float32(volume)
    np.clip(np.rint(total, out=total), S16_MIN, S16_MAX, out=total)
    mixed = AudioFrame.from_ndarray(
        total.astype(np.int16).reshape(1, -1), format="s16", layout=frame.layout.name
    )
    return timed_like(mixed, frame)
