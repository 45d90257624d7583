"""Every remote participant into one playback stream, one device period at a time.

The playback thread pulls (the device clock drives); network frames are pushed from the loop.
Each participant has its own FIFO, which is what absorbs network jitter and clock drift:
- playback of a participant starts once `prefill` frames are queued, and after running dry it
  waits for the prefill again instead of stuttering on every late packet;
- a FIFO grown past `ceiling` (the sender's clock runs faster than the device's) is cut back
  to the prefill, so drift never turns into latency over a long call;
- starting and running dry fade over a few milliseconds, so neither clicks;
- a peak limiter keeps the sum of loud participants from clipping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcalld.media.fifo import SampleFifo

FADE_SECONDS = 0.004
CEILING = 0.98  # of full scale, after the limiter
LIMITER_RELEASE_PER_SECOND = 4.0  # gain recovers by this factor per second of audio
FULL_SCALE = 32768.0

Samples = np.ndarray[Any, np.dtype[np.float32]]


@dataclass
class ParticipantStream:
    channels: int
    fifo: SampleFifo = field(default_factory=SampleFifo)
    playing: bool = False
    underruns: int = 0
    dropped_frames: int = 0
    level: float = 0.0

    @property
    def queued(self) -> int:
        return self.fifo.queued

    def take(self, frames: int) -> Samples:
        """Up to `frames` frames from the FIFO, fewer if it runs dry."""
        taken = self.fifo.take(frames)
        return taken if taken is not None else np.zeros((0, self.channels), np.float32)

    def drop(self, frames: int) -> None:
        self.fifo.take(frames)
        self.dropped_frames += frames


class Mixer:
    def __init__(self, rate: int, channels: int, prefill: int, ceiling: int) -> None:
        self.rate, self.channels = rate, channels
        self._prefill, self._ceiling = prefill, ceiling
        self._fade = max(1, int(rate * FADE_SECONDS))
        self._streams: dict[str, ParticipantStream] = {}
        self._volumes: dict[str, float] = {}  # kept while a participant's track restarts
        self._lock = threading.Lock()
        self._limiter_gain = 1.0
        self.master_volume = 1.0

    def push(self, participant_id: str, samples: np.ndarray[Any, Any]) -> None:
        """Interleaved s16 at the mixer's rate and channel count."""
        block = np.multiply(samples.reshape(-1, self.channels), 1 / FULL_SCALE, dtype=np.float32)
        with self._lock:
            stream = self._streams.setdefault(participant_id, ParticipantStream(self.channels))
            stream.fifo.push(block)
            if stream.queued > self._ceiling:
                stream.drop(stream.queued - self._prefill)

    def remove(self, participant_id: str) -> None:
        with self._lock:
            self._streams.pop(participant_id, None)

    def set_volume(self, participant_id: str, volume: float) -> None:
        with self._lock:
            self._volumes[participant_id] = volume

    def forget(self, participant_id: str) -> None:
        """The participant left: its volume goes too."""
        with self._lock:
            self._volumes.pop(participant_id, None)

    def mix(self, frames: int) -> np.ndarray[Any, np.dtype[np.int16]]:
        """The next `frames` frames for the device, s16, one row per frame."""
        total = np.zeros((frames, self.channels), np.float32)
        with self._lock:
            for participant_id, stream in self._streams.items():
                taken = self._next_block(stream, frames)
                volume = self._volumes.get(participant_id, 1.0)
                if len(taken) and volume:
                    total[: len(taken)] += taken if volume == 1.0 else taken * volume
        return self._limit(total, self.master_volume)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                participant_id: {
                    "queued_ms": round(1000 * stream.queued / self.rate, 1),
                    "underruns": stream.underruns,
                    "dropped_ms": round(1000 * stream.dropped_frames / self.rate, 1),
                    "level_dbfs": round(20 * np.log10(max(stream.level, 1e-5)), 1),
                    "volume": self._volumes.get(participant_id, 1.0),
                }
                for participant_id, stream in self._streams.items()
            }

    def _next_block(self, stream: ParticipantStream, frames: int) -> Samples:
        """What the stream plays in the next `frames`: fewer frames where it falls silent."""
        if not stream.playing:
            if stream.queued < self._prefill:
                stream.level = 0.0
                return np.zeros((0, self.channels), np.float32)
            stream.playing = True
            taken = stream.take(frames)
            fade = min(self._fade, len(taken))
            taken[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)[:, None]
        else:
            taken = stream.take(frames)
            if len(taken) < frames:
                stream.playing = False
                stream.underruns += 1
                fade = min(self._fade, len(taken))
                taken[len(taken) - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)[:, None]
        flat = taken.reshape(-1)
        stream.level = float(np.sqrt(np.dot(flat, flat) / (frames * self.channels)))
        return taken

    def _limit(self, total: Samples, volume: float) -> np.ndarray[Any, np.dtype[np.int16]]:
        """`total` at `volume`, with instant attack to the gain that keeps this block under
        the ceiling and slow release."""
        peak = volume * float(np.max(np.abs(total))) if total.size else 0.0
        release = LIMITER_RELEASE_PER_SECOND ** (len(total) / self.rate)
        gain = min(1.0, self._limiter_gain * release)
        if peak * gain > CEILING:
            gain = CEILING / peak
        self._limiter_gain = gain
        total *= volume * gain * (FULL_SCALE - 1)
        limited: np.ndarray[Any, np.dtype[np.int16]] = np.rint(total, out=total).astype(np.int16)
        return limited
