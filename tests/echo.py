"""Echo measurements shared by the tests and the bench: a far end heard through a "room",
a local talker, and what voice processing makes of the two (see tests/soundcard.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
from av import AudioFrame
from av.frame import Frame

from tests.helpers import eventually
from tests.soundcard import PcmTrack, PipeSoundCard, Room, playing
from vcalld.config import AudioConfig
from vcalld.config.models import SpeakerConfig, VoiceConfig
from vcalld.media.sinks.speaker import Speaker
from vcalld.media.sources.alsa import AlsaSource
from vcalld.media.voice.processor import VoiceProcessor

FAR_GAIN = 0.5  # the far end's speech peaks at half of full scale
NEAR_GAIN = 0.3
MAX_LAG_HOPS = 100  # of 10 ms: processing, buffers and the start of capture
CONVERGED_AFTER = 2.0  # seconds of far-end speech the canceller may take to adapt
DOUBLE_TALK = 1.0  # seconds in which both talk

Signal = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class EchoResult:
    erle_db: float  # echo into the microphone over echo left after processing, far end alone
    near_correlation: float  # of the talker's loudness envelope, before and after, talker alone
    near_gain_db: float
    double_talk_correlation: float  # the talker's envelope while the far end talks too
    double_talk_gain_db: float


@dataclass(frozen=True)
class Heard:
    """What went into the microphone, in its two parts."""

    echo: Signal
    near: Signal
    rate: int


def envelope(signal: Signal, rate: int) -> Signal:
    """RMS per 10 ms: compares signals at different rates and a few ms apart."""
    hop = rate // 100
    blocks = len(signal) // hop
    rms: Signal = np.sqrt(np.mean(signal[: blocks * hop].reshape(blocks, hop) ** 2, axis=1))
    return rms


def measure(heard: Heard, out: Signal, out_rate: int) -> EchoResult:
    """Compare what the microphone heard with what came out of processing; the talker, who
    starts while the far end still speaks, aligns the two."""
    echo_env, near_env = envelope(heard.echo, heard.rate), envelope(heard.near, heard.rate)
    out_env = envelope(out, out_rate)

    def overlap(lag: int) -> float:
        shifted = out_env[lag : lag + len(near_env)]
        return float(np.dot(shifted, near_env[: len(shifted)]))

    out_env = out_env[max(range(MAX_LAG_HOPS), key=overlap) :]
    hops = min(len(out_env), len(near_env))
    echo_env, near_env, out_env = echo_env[:hops], near_env[:hops], out_env[:hops]
    talking, echoing = np.flatnonzero(near_env > 0), np.flatnonzero(echo_env > 1e-3)
    far_alone = slice(int(CONVERGED_AFTER * 100), talking[0])
    both = slice(talking[0], echoing[-1])
    near_alone = slice(echoing[-1] + 20, talking[-1])  # after the echo's tail

    def power(envelope: Signal) -> float:
        return float(np.mean(envelope**2)) + 1e-12

    def kept(window: slice) -> tuple[float, float]:
        correlation = float(np.corrcoef(out_env[window], near_env[window])[0, 1])
        return correlation, 10 * np.log10(power(out_env[window]) / power(near_env[window]))

    return EchoResult(
        10 * np.log10(power(echo_env[far_alone]) / power(out_env[far_alone])),
        *kept(near_alone),
        *kept(both),
    )


def stereo(mono: Signal) -> np.ndarray:
    return np.repeat((mono * 32767).astype(np.int16), 2)


async def talk_in_room(
    card: PipeSoundCard, config: VoiceConfig, room: Room, far: Signal, near: Signal
) -> tuple[EchoResult, VoiceProcessor]:
    """The daemon's speaker (48 kHz stereo) plays `far`; its microphone (48 kHz mono) hears
    it through `room` and a talker who says `near` for the last `DOUBLE_TALK` seconds of
    it and on; all through libasound, in real time."""
    card.plug("mic")
    card.plug("speaker")
    processor = VoiceProcessor(config, 48000, 1, echo_reference=True)
    speaker_config = SpeakerConfig(enabled=True, device=card.SPEAKER)
    speaker = Speaker(speaker_config, lambda problem: None, processor)
    microphone = AlsaSource(AudioConfig(source="alsa", device=card.MIC, sample_rate=48000))
    microphone.process_voice(processor)
    frames: list[AudioFrame] = []
    problems: list[str | None] = []

    def publish(frame: Frame) -> None:
        assert isinstance(frame, AudioFrame)
        frames.append(frame)

    capture = asyncio.create_task(microphone.run(publish, problems.append))
    try:
        await eventually(lambda: problems == [None], 5)
        async with playing(speaker, {"far-end": PcmTrack(stereo(far), loop=False)}):
            near_at = len(far) / 48000 - DOUBLE_TALK
            with card.echoing(48000, 2, room, near, near_at) as written:
                await asyncio.sleep(near_at + len(near) / 48000 + 0.5)
    finally:
        capture.cancel()
        card.close()
    heard = Heard(
        np.concatenate([parts[0] for parts in written]),
        np.concatenate([parts[1] for parts in written]),
        48000,
    )
    out = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return measure(heard, out / 32768.0, 48000), processor
