"""Opening an ALSA PCM with exactly the parameters asked for, or a clear reason why not."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import alsaaudio

PERIODS = 4


class AudioDeviceError(Exception):
    """The device is missing, busy, gone, or cannot run with the parameters asked for."""


class Direction(Enum):
    CAPTURE = alsaaudio.PCM_CAPTURE
    PLAYBACK = alsaaudio.PCM_PLAYBACK


@dataclass(frozen=True)
class PcmSpec:
    device: str
    rate: int
    channels: int
    period_frames: int

    @classmethod
    def of(cls, device: str, rate: int, channels: int, period_frames: int | None) -> PcmSpec:
        """The spec for a config section; the period defaults to 20 ms, the call's frame."""
        return cls(device, rate, channels, period_frames or rate // 50)

    @property
    def period_seconds(self) -> float:
        return self.period_frames / self.rate


def resolve_device(name: str) -> str:
    """A PCM name as given (`default`, `plughw:CARD=Loopback,DEV=1`, one from an asoundrc); a
    bare card id as `vcalld devices` lists it becomes `plughw:CARD=<id>`, which converts any
    rate and channel count the card lacks."""
    if name in alsaaudio.cards():
        return f"plughw:CARD={name}"
    return name


def open_pcm(direction: Direction, spec: PcmSpec) -> alsaaudio.PCM:
    name = resolve_device(spec.device)
    try:
        pcm = alsaaudio.PCM(
            type=direction.value,
            mode=alsaaudio.PCM_NORMAL,
            rate=spec.rate,
            channels=spec.channels,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=spec.period_frames,
            periods=PERIODS,
            device=name,
        )
    except alsaaudio.ALSAAudioError as error:
        raise AudioDeviceError(f"{name}: {error}") from None
    info = pcm.info()
    if (info["rate"], info["channels"]) != (spec.rate, spec.channels):
        pcm.close()
        raise AudioDeviceError(
            f"{name} runs at {info['rate']} Hz with {info['channels']} channels, not "
            f"{spec.rate} Hz with {spec.channels}; a plughw: device converts"
        )
    return pcm


def available_frames(pcm: alsaaudio.PCM) -> int:
    """Frames the device holds for reading (capture) or has room for (playback); 0 when it
    cannot say, as in an xrun that the next read or write recovers from."""
    try:
        available: int = pcm.avail()
        return max(0, available)
    except alsaaudio.ALSAAudioError:
        return 0
