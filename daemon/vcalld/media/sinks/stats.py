"""A renderer that shows nothing but measures everything: frame rate, size, pitch, level.

It is the sink of headless runs and tests, and the reference the real display is checked
against: it recognises the test pattern's frame stamps and the tone's frequency.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame

from vcalld.config import VcalldConfig
from vcalld.media.layout import picture_plane, s16_samples
from vcalld.media.pattern import bars_match, read_stamp

FPS_WINDOW_SECONDS = 2.0
ANALYSIS_SECONDS = 0.5


@dataclass
class VideoStats:
    frames: int = 0
    width: int = 0
    height: int = 0
    stamped_frames: int = 0
    pattern_frames: int = 0
    last_stamp: int | None = None
    first_frame_at: float | None = None
    last: VideoFrame | None = None
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=512))

    def add(self, frame: VideoFrame) -> None:
        now = time.monotonic()
        self.frames += 1
        self.first_frame_at = self.first_frame_at or now
        self.arrivals.append(now)
        self.width, self.height = frame.width, frame.height
        self.last = frame
        if frame.format.name != "yuv420p":
            return
        luma = picture_plane(frame, 0)
        stamp = read_stamp(luma)
        if stamp is not None:
            self.stamped_frames += 1
            self.last_stamp = stamp
            self.pattern_frames += bars_match(
                luma, picture_plane(frame, 1), picture_plane(frame, 2)
            )

    def fps(self) -> float:
        now = time.monotonic()
        recent = [t for t in self.arrivals if now - t <= FPS_WINDOW_SECONDS]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-3)

    def snapshot(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "fps": round(self.fps(), 1),
            "width": self.width,
            "height": self.height,
            "stamped_frames": self.stamped_frames,
            "pattern_frames": self.pattern_frames,
            "last_stamp": self.last_stamp,
            "first_frame_at": self.first_frame_at,
            # How bright the latest picture is (0-255): black, or a control taking effect.
            "luma": round(float(picture_plane(self.last, 0).mean()), 1) if self.last else None,
        }


@dataclass
class AudioStats:
    """Level and pitch of what arrived, with each frame placed at its timestamp.

    Frames lost on the network or skipped by a starved sender leave silent gaps rather than
    being spliced together: splicing shortens the waveform and reads as a higher pitch
    (under qemu-user a 660 Hz tone read as 664-672 Hz).
    """

    frames: int = 0
    samples: int = 0
    sample_rate: int = 0
    first_frame_at: float | None = None
    recent: deque[tuple[int, np.ndarray[Any, Any]]] = field(
        default_factory=lambda: deque(maxlen=64)
    )
    _next_start: int = field(default=0, init=False, repr=False)

    def add(self, frame: AudioFrame) -> None:
        self.frames += 1
        self.samples += frame.samples
        self.sample_rate = frame.sample_rate
        self.first_frame_at = self.first_frame_at or time.monotonic()
        # Kept as it came; mixed to mono only when analysed, which is far rarer than frames.
        samples = s16_samples(frame)
        start = self._next_start if frame.pts is None else _sample_index(frame)
        self.recent.append((start, samples))
        self._next_start = start + frame.samples

    def analysis(self) -> tuple[float | None, float | None, float | None]:
        """(level in dBFS, dominant frequency in Hz, share of the timeline that arrived) over
        the last half second."""
        placed = self.timeline()
        if placed is None:
            return None, None, None
        timeline, covered = placed
        if not covered.any():
            return None, None, 0.0
        coverage = round(float(covered.mean()), 3)
        level = level_dbfs(timeline[covered])
        if level <= SILENCE_DBFS:
            return level, None, coverage
        return level, dominant_frequency(timeline, self.sample_rate), coverage

    def timeline(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
        """The last half second as mono in [-1, 1], each frame at its timestamp, and which
        samples arrived; None before any audio."""
        if not self.recent or not self.sample_rate:
            return None
        wanted = int(self.sample_rate * ANALYSIS_SECONDS)
        timeline = np.zeros(wanted)
        covered = np.zeros(wanted, dtype=bool)
        end = self._next_start
        for start, samples in self.recent:
            offset = _wrapped_distance(start, end) + wanted
            first, last = max(offset, 0), min(offset + len(samples), wanted)
            if first < last:
                mono = samples[first - offset : last - offset].mean(axis=1)
                timeline[first:last] = mono / 32768.0
                covered[first:last] = True
        return timeline, covered

    def snapshot(self) -> dict[str, Any]:
        level, frequency, coverage = self.analysis()
        return {
            "frames": self.frames,
            "samples": self.samples,
            "sample_rate": self.sample_rate,
            "level_dbfs": level,
            "frequency_hz": frequency,
            "coverage": coverage,
            "first_frame_at": self.first_frame_at,
        }


RTP_TIMESTAMP_MODULUS = 1 << 32
SILENCE_DBFS = -100.0


def level_dbfs(signal: np.ndarray[Any, Any]) -> float:
    """RMS level of samples in [-1, 1], floored at -100 dBFS (silence)."""
    rms = float(np.sqrt(np.mean(signal**2))) if signal.size else 0.0
    return round(max(20 * float(np.log10(max(rms, 1e-12))), SILENCE_DBFS), 1)


def dominant_frequency(signal: np.ndarray[Any, Any], rate: int) -> float:
    """The strongest frequency (Hz) in a mono signal; bins are rate/len wide."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    peak = int(np.argmax(spectrum[1:])) + 1
    return round(peak * rate / len(signal), 1)


def _sample_index(frame: AudioFrame) -> int:
    """The frame's start in samples; received frames carry the 32-bit RTP timestamp."""
    assert frame.pts is not None
    if frame.time_base is None:
        return frame.pts
    # Integer arithmetic: Fraction's costs more than the rest of a frame's bookkeeping.
    scaled = frame.pts * frame.time_base.numerator * frame.sample_rate
    return (2 * scaled + frame.time_base.denominator) // (2 * frame.time_base.denominator)


def _wrapped_distance(start: int, end: int) -> int:
    """start - end, across a wrap of the RTP timestamp if there was one."""
    half = RTP_TIMESTAMP_MODULUS // 2
    return (start - end + half) % RTP_TIMESTAMP_MODULUS - half


@dataclass
class ParticipantMedia:
    video: VideoStats = field(default_factory=VideoStats)
    audio: AudioStats = field(default_factory=AudioStats)


class StatsRenderer:
    def __init__(self, config: VcalldConfig | None = None) -> None:
        self._participants: dict[str, ParticipantMedia] = {}

    async def render(self, participant_id: str, track: MediaStreamTrack) -> None:
        media = self._participants.setdefault(participant_id, ParticipantMedia())
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    media.video.add(frame)
                elif isinstance(frame, AudioFrame):
                    media.audio.add(frame)
                else:
                    continue
                self.take_frame(participant_id, frame)
        except MediaStreamError:
            return

    def take_frame(self, participant_id: str, frame: Frame) -> None:
        """Each frame, after it is measured: a renderer that also shows frames takes them here,
        and can be handed frames from elsewhere the same way (a bench, a test)."""

    def forget(self, participant_id: str) -> None:
        self._participants.pop(participant_id, None)

    def audio_timeline(self, participant_id: str) -> np.ndarray[Any, Any] | None:
        """The participant's last half second of audio (mono, [-1, 1], gaps silent), for a
        closer look than the snapshot's level and pitch."""
        media = self._participants.get(participant_id)
        placed = media.audio.timeline() if media is not None else None
        return None if placed is None else placed[0]

    def snapshot(self) -> dict[str, Any]:
        return {
            participant: {"video": media.video.snapshot(), "audio": media.audio.snapshot()}
            for participant, media in self._participants.items()
        }
