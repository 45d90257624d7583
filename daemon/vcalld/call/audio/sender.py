"""The outgoing voice: Opus with in-band FEC set from the loss the far end reports, and RED
copies of the last frames, as many as the loss needs and the configuration allows."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from av import AudioFrame, AudioResampler
from av.frame import Frame

from vcalld.call.audio import opus, red
from vcalld.config.models import CallAudioConfig
from vcalld.media.fifo import SampleFifo
from vcalld.media.layout import layout_of, s16_samples

FRAME_SAMPLES = 960  # 20 ms at 48 kHz
MAX_FRAMES_PER_PACKET = 3  # a backlog goes out as one 40 or 60 ms packet, never as two
TARGET_DELIVERY = 0.99  # copies are added until this share of frames would get through
LOSS_WINDOW_SECONDS = 8.0  # loss is the worst report in this window: up fast, down slowly
MIN_COPY_BITRATE = 12000  # below this Opus loses more than another copy would win back
BUDGET_FACTOR = 3  # redundancy may raise the audio's bitrate to 3x the configured one
FEC_HISTORY = 50  # packets: libopus codes FEC only for speech in its SILK modes
FEC_RELIABLE = 0.5  # count on FEC once this share of recent packets carried it (pauses in
# speech carry none, and need none)
GAP_TOLERANCE = 48  # RTP units (1 ms): a smaller step between frames' timestamps is rounding
MAX_GAP = 2 * opus.SAMPLE_RATE  # a longer jump is a new source's own clock, not a stall


@dataclass(frozen=True)
class VoiceSettings:
    bitrate: int = 32000
    channels: int = 1
    fec: bool = True
    dtx: bool = False
    max_redundancy: int = 6  # RED copies per packet at most; 0 sends no copies
    application: str = "voip"

    @classmethod
    def from_config(cls, config: CallAudioConfig) -> VoiceSettings:
        """Music (stereo or 64 kbit/s and up) is coded for fidelity, voice for speech."""
        music = config.stereo or config.bitrate_kbps >= 64
        return cls(
            bitrate=config.bitrate_kbps * 1000,
            channels=2 if config.stereo else 1,
            fec=config.fec,
            dtx=config.dtx,
            max_redundancy=config.red_max_copies,
            application="audio" if music else "voip",
        )


def copies_needed(loss: float, *, fec: bool, limit: int) -> int:
    """RED copies so that frames get through with TARGET_DELIVERY at independent `loss`.

    A frame arrives if its own packet or one of its k copies does, or (with FEC) the next
    frame's packet or its copies: 1 - loss^(k + 1), or 1 - loss^(k + 2).
    """
    if loss <= 0:
        return 0
    chances = 1 if not fec else 2
    copies = 0
    while copies < limit and loss ** (copies + chances) > 1 - TARGET_DELIVERY:
        copies += 1
    return copies


class VoiceEncoder:
    """aiortc's Encoder interface (encode, pack), for Opus or RED-over-Opus payloads."""

    def __init__(
        self,
        settings: VoiceSettings,
        *,
        opus_type: int,
        red: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._opus_type = opus_type
        self._red = red
        self._clock = clock
        self._encoder = opus.Encoder(
            settings.channels,
            bitrate=settings.bitrate,
            application=settings.application,
            fec=settings.fec,
            dtx=settings.dtx,
        )
        self._resampler = self._new_resampler()
        self._fifo = SampleFifo()
        self._timestamp = 0
        self._expected_start: int | None = None  # where the next frame follows on, RTP units
        self._sent: collections.deque[tuple[int, bytes]] = collections.deque()  # for copies
        self._carried_fec: collections.deque[bool] = collections.deque(maxlen=FEC_HISTORY)
        self._silent = False  # the last frame was DTX silence
        self._reports: collections.deque[tuple[float, float]] = collections.deque()
        self.loss = 0.0
        self.copies = 0
        self._bitrate = settings.bitrate
        self._settings_changed = False  # applied at the next frame, once for every report

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, AudioFrame)
        self._follow_gap(frame)
        for resampled in self._resampler.resample(frame):
            self._fifo.push(s16_samples(resampled).copy())
        frames = min(self._fifo.queued // FRAME_SAMPLES, MAX_FRAMES_PER_PACKET)
        if not frames:
            return [], self._timestamp
        pcm = self._fifo.take(frames * FRAME_SAMPLES)
        assert pcm is not None
        if self._settings_changed:
            self._settings_changed = False
            self._encoder.set_expected_loss(round(self.loss * 100) if self.settings.fec else 0)
            self._encoder.set_bitrate(self._bitrate)
        packet = self._encoder.encode(np.ascontiguousarray(pcm).reshape(-1))
        timestamp = self._timestamp
        self._timestamp += frames * FRAME_SAMPLES
        silent_before, self._silent = self._silent, opus.is_dtx(packet)
        if silent_before and self._silent:
            return [], timestamp  # DTX: the first silent frame tells the receiver, no more
        self._carried_fec.append(opus.has_fec(packet))
        return [self._payload(packet, timestamp)], timestamp

    def _follow_gap(self, frame: AudioFrame) -> None:
        """Time a source skipped (a generator after a stall, a frame dropped on the way) is
        skipped in the RTP timestamps too: the far end conceals it where it was, and the
        stream's clock keeps to real time for playout delay and lip sync instead of falling
        behind by every gap. The unfinished frame before a gap is left out."""
        start = _start_in_rtp_units(frame)
        if start is None:
            self._expected_start = None
            return
        gap = start - self._expected_start if self._expected_start is not None else 0
        if GAP_TOLERANCE < gap <= MAX_GAP:
            self._timestamp += self._fifo.queued + gap
            self._fifo = SampleFifo()
            self._resampler = self._new_resampler()
        samples = Fraction(frame.samples * opus.SAMPLE_RATE, frame.sample_rate)
        self._expected_start = round(start + samples)

    def _new_resampler(self) -> AudioResampler:
        layout = layout_of(self.settings.channels)
        return AudioResampler(format="s16", layout=layout, rate=opus.SAMPLE_RATE)

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        raise TypeError("the voice encoder takes audio frames, not encoded packets")

    def report_loss(self, fraction: float) -> None:
        """A receiver report's fraction of our packets lost (before any recovery)."""
        now = self._clock()
        self._reports.append((now, fraction))
        while self._reports[0][0] < now - LOSS_WINDOW_SECONDS:
            self._reports.popleft()
        self.loss = max(loss for _, loss in self._reports)
        settings = self.settings
        limit = settings.max_redundancy if self._red else 0
        self.copies = copies_needed(self.loss, fec=self._fec_reliable(), limit=limit)
        budget = settings.bitrate * BUDGET_FACTOR // (self.copies + 1)
        self._bitrate = max(MIN_COPY_BITRATE, min(settings.bitrate, budget))
        self._settings_changed = True

    def _fec_reliable(self) -> bool:
        """Whether recent packets carried FEC: libopus leaves it out for a tone, music or
        its CELT mode however much loss it expects, and then only copies help."""
        carried = list(self._carried_fec)
        return len(carried) == FEC_HISTORY and sum(carried) >= FEC_RELIABLE * FEC_HISTORY

    def _payload(self, packet: bytes, timestamp: int) -> bytes:
        if not self._red:
            return packet
        recent = list(self._sent)[len(self._sent) - self.copies :]
        copies = [red.Block(timestamp - sent, self._opus_type, data) for sent, data in recent]
        self._sent.append((timestamp, packet))
        while len(self._sent) > self.settings.max_redundancy:
            self._sent.popleft()
        return red.pack(red.Block(0, self._opus_type, packet), copies)

    def close(self) -> None:
        self._encoder.close()


def _start_in_rtp_units(frame: AudioFrame) -> int | None:
    if frame.pts is None:
        return None
    time_base = frame.time_base or Fraction(1, frame.sample_rate)
    return round(frame.pts * time_base * opus.SAMPLE_RATE)
