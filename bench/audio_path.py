"""The microphone and speaker path: echo cancellation, and the latency each part adds.

All of it runs the daemon's own device code on real libasound (tests/soundcard.py's pipe card,
paced in real time by this process) and the real WebRTC audio processing library:

1. Echo: the speaker plays far-end speech (espeak-ng), the microphone hears it through a room
   of 10, 60 or 150 ms at 0.4 gain plus a local talker. ERLE with the far end alone, and how
   much of the talker survives alone and in double talk (envelope correlation, gain). The
   baseline in the same run is processing off: the echo the far end would hear. The peer is
   Debian's Chromium in the same room on the same card, through its own ALSA code, with its
   echo canceller (WebRTC's AEC3) on (bench/chromium_echo.py).
2. Capture to track: a microphone period that carries a click, from the moment the device has
   it until its frame is published to the call's outgoing track (capture thread, processing,
   handoff to the event loop), with processing off and on. Before it, a sample waits up to
   one period in the device; after it, aiortc encodes (Opus) and sends.
3. Track to speaker: a click in a received frame until the speaker's device gives it out
   (resampling, the mixer's FIFO and prefill, the ALSA buffer, the card's pipe).
4. Per stage, offline: the delay the module adds to the signal (cross-correlation), which
   comes on top of 2, and its CPU per second of audio, at 16 and 48 kHz.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from av import AudioFrame
from av.frame import Frame

from bench.chromium_echo import chromium_talk_in_room
from bench.table import markdown_table
from tests.echo import FAR_GAIN, NEAR_GAIN, EchoResult, Signal, talk_in_room
from tests.soundcard import PcmTrack, PipeSoundCard, Room, playing
from tests.speech import FAR_END, NEAR_END, speech
from vcalld.config import AudioConfig
from vcalld.config.models import SpeakerConfig, VoiceConfig
from vcalld.media.sinks.speaker import Speaker
from vcalld.media.sources.alsa import AlsaSource
from vcalld.media.voice.processor import VoiceProcessor

RATE = 48000
ROOMS_MS = (10, 60, 150)
ALL = VoiceConfig()
OFF = VoiceConfig(
    echo_cancellation=False, noise_suppression=False, gain_control=False, high_pass_filter=False
)
ECHO_ONLY = OFF.model_copy(update={"echo_cancellation": True})
CLICK_EVERY = 0.5  # seconds
CLICK = 0.4 * np.sin(2 * np.pi * 1000 * np.arange(RATE // 100) / RATE)  # 10 ms at 1 kHz


def spread(ms: list[float]) -> list[str]:
    ms = sorted(ms)
    return [str(len(ms)), f"{statistics.median(ms):.1f}", f"{ms[int(0.9 * (len(ms) - 1))]:.1f}"]


async def echo_rows(card: PipeSoundCard) -> list[list[str]]:
    far = FAR_GAIN * speech(FAR_END, RATE)
    near = NEAR_GAIN * speech(NEAR_END, RATE, "en+f3", 70)
    rows = []
    for room_ms in ROOMS_MS:
        for name, config in (("off (baseline)", OFF), ("echo cancellation", ECHO_ONLY)):
            result, _ = await talk_in_room(card, config, room_of(room_ms), far, near)
            rows.append(echo_row(room_ms, name, result))
        result = await chromium_talk_in_room(card, room_of(room_ms), far, near)
        rows.append(echo_row(room_ms, "Chromium's AEC3 (peer)", result))
    return rows


def room_of(delay_ms: int) -> Room:
    return Room(delay=delay_ms / 1000, gain=0.4)


def echo_row(room_ms: int, processing: str, result: EchoResult) -> list[str]:
    return [
        f"{room_ms} ms",
        processing,
        f"{result.erle_db:.1f}",
        f"{result.near_correlation:.3f}",
        f"{result.near_gain_db:+.1f}",
        f"{result.double_talk_correlation:.3f}",
        f"{result.double_talk_gain_db:+.1f}",
    ]


def clicks(seconds: float) -> Signal:
    signal = np.zeros(int(seconds * RATE))
    for start in range(0, len(signal), int(CLICK_EVERY * RATE)):
        signal[start : start + len(CLICK)] = CLICK[: len(signal) - start]
    return signal


def onsets(samples: Signal, threshold: float = 0.05) -> list[int]:
    """First sample of each click: loud after at least 0.2 s of quiet."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    found = [int(loud[0])] if len(loud) else []
    found += [int(b) for a, b in itertools.pairwise(loud) if b - a > RATE // 5]
    return found


async def capture_latency(card: PipeSoundCard, config: VoiceConfig, seconds: float) -> list[float]:
    """Milliseconds from a click's 20 ms written into the microphone to its frame's publish."""
    card.plug("mic")
    processor = None if config == OFF else VoiceProcessor(config, RATE, 1, echo_reference=False)
    microphone = AlsaSource(AudioConfig(source="alsa", device=card.MIC, sample_rate=48000))
    if processor is not None:
        microphone.process_voice(processor)
    published: list[tuple[float, np.ndarray]] = []

    def publish(frame: Frame) -> None:
        assert isinstance(frame, AudioFrame)
        published.append((time.monotonic(), frame.to_ndarray().reshape(-1)))

    written_at: list[float] = []
    signal = (clicks(seconds) * 32767).astype(np.int16)
    with card.feeding(signal, RATE, 1, written_at):
        task = asyncio.create_task(microphone.run(publish, lambda problem: None))
        await asyncio.sleep(seconds)
        task.cancel()
    card.close()
    out = np.concatenate([samples for _, samples in published]) / 32768.0
    ends = np.cumsum([len(samples) for _, samples in published])
    chunk = RATE // 50
    latencies = []
    # The microphone reads from the first chunk written on, so a sample's index is the same in
    # and out; what processing holds back shows as an onset later than its click.
    every = int(CLICK_EVERY * RATE)
    for onset in onsets(out):
        frame = int(np.searchsorted(ends, onset, side="right"))
        written = (onset // every * every) // chunk
        if frame < len(published) and written < len(written_at):
            latencies.append(1000 * (published[frame][0] - written_at[written]))
    return latencies


async def playback_latency(card: PipeSoundCard, seconds: float) -> list[float]:
    """Milliseconds from a received frame that carries a click to the click leaving the
    speaker's device."""
    card.plug("speaker")
    speaker = Speaker(SpeakerConfig(enabled=True, device=card.SPEAKER), lambda problem: None)
    received_at: dict[int, float] = {}
    track = TimedTrack(np.repeat((clicks(seconds) * 32767).astype(np.int16), 2), received_at)
    read_at: list[tuple[float, int]] = []
    async with playing(speaker, {"far-end": track}):
        played = await asyncio.to_thread(card.record, RATE, 2, seconds, read_at)
    card.close()
    left = played.reshape(-1, 2)[:, 0] / 32768.0
    read_times = np.array([moment for moment, _ in read_at])
    read_frames = np.array([size // 4 for _, size in read_at])
    latencies = []
    for index, onset in enumerate(onsets(left)):
        out_at = read_times[int(np.searchsorted(read_frames, onset, side="right"))]
        sent = received_at.get(index * int(CLICK_EVERY * RATE) // 960)
        if sent is not None:
            latencies.append(1000 * (out_at - sent))
    return latencies


class TimedTrack(PcmTrack):
    """Notes when each 20 ms frame is handed over, as the network would hand it."""

    def __init__(self, samples: np.ndarray, received_at: dict[int, float]) -> None:
        super().__init__(samples, loop=False)
        self._received_at, self._count = received_at, 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        self._received_at[self._count] = time.monotonic()
        self._count += 1
        return frame


def stage_rows() -> list[list[str]]:
    """Offline: each stage alone, then all, at 16 and 48 kHz."""
    stages: list[tuple[str, VoiceConfig]] = [
        (field.replace("_", " "), OFF.model_copy(update={field: True}))
        for field in VoiceConfig.model_fields
    ]
    stages.append(("all four", ALL))
    rows = []
    for rate in (16000, 48000):
        talk = NEAR_GAIN * speech(NEAR_END, rate)
        samples = (np.tile(talk, 3) * 32767).astype(np.int16)
        for name, config in stages:
            delay, cpu = processing_cost(config, rate, samples)
            rows.append([f"{rate // 1000} kHz", name, f"{delay:.1f}", f"{cpu:.1f}"])
    return rows


def processing_cost(config: VoiceConfig, rate: int, samples: np.ndarray) -> tuple[float, float]:
    """(delay in ms by cross-correlation, CPU ms per second of audio)."""
    processor = VoiceProcessor(config, rate, 1, echo_reference=True)
    reference = processor.echo_reference(rate, 1)
    period = rate // 50
    silence = np.zeros(period, np.int16)
    out = []
    started = time.process_time()
    for start in range(0, len(samples) - period + 1, period):
        if reference is not None:
            reference.played(silence, 0)
        out.append(processor.process(samples[start : start + period], period))
    cpu = time.process_time() - started
    processed = np.concatenate(out).astype(np.float64)
    original = samples[: len(processed)].astype(np.float64)
    lags = range(0, rate // 20)

    def overlap(lag: int) -> float:
        return float(np.dot(processed[lag:], original[: len(original) - lag]))

    delay = max(lags, key=overlap)
    return 1000 * delay / rate, 1000 * cpu / (len(samples) / rate)


async def run(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="vcalld-bench-") as folder:
        card = PipeSoundCard(Path(folder))
        os.environ["ALSA_CONFIG_PATH"] = card.config_path
        echo = await echo_rows(card)
        latency = [
            ["capture to track", "off", *spread(await capture_latency(card, OFF, seconds))],
            ["capture to track", "all four", *spread(await capture_latency(card, ALL, seconds))],
            ["track to speaker", "-", *spread(await playback_latency(card, seconds))],
        ]
    print("Echo: speaker 48 kHz stereo, microphone 48 kHz mono, through libasound in real time")
    print(
        markdown_table(
            [
                "room delay",
                "processing",
                "ERLE dB (far end alone)",
                "talker alone: envelope corr.",
                "gain dB",
                "double talk: envelope corr.",
                "gain dB",
            ],
            echo,
        )
    )
    print()
    print("Latency through the daemon's device path, 48 kHz, 20 ms periods, 4 per ALSA buffer")
    print(markdown_table(["path", "processing", "clicks", "median ms", "p90 ms"], latency))
    print()
    print("Each stage offline (speech, 10 ms chunks): delay it adds and CPU on this machine")
    print(markdown_table(["rate", "stage", "delay ms", "CPU ms per s of audio"], stage_rows()))
    print(f"reproduce: make bench-audio BENCH_ARGS='--seconds {seconds:g}'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="of clicks per latency row")
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
