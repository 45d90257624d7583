"""Audio under random packet loss: what share of 20 ms frames is played as sent, recovered
by Opus FEC or RED, concealed, or missing, how long from source to the far end's track,
and whether the call is still up after a minute.

vcalld to vcalld: two peer connections with vcalld's audio engine (aiortc with
vcalld/call/aiortc_hooks.py) in this process, each sending espeak-ng speech in a loop.
Loss is a fixed pseudo-random pattern on every datagram each side receives (media, RTCP,
ICE), so both directions lose at the rate, starting after a few seconds of clean call.
Latency is from the moment a frame leaves its source track to the moment the far end's
playout hands it on (tracks on one clock; no sound card in the path).

Run it with `make bench-loss`, in a private network namespace with only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from bench.table import markdown_table
from tests.helpers import eventually
from tests.lossy import Loss, impair
from tests.speech import FAR_END, speech
from vcalld.call import aiortc_hooks
from vcalld.call.audio.playout import Playout, Source
from vcalld.call.audio.receiver import AudioReceiver
from vcalld.call.audio.sender import VoiceEncoder, VoiceSettings
from vcalld.call.ice import restrict_host_addresses, rtc_configuration

RATE = 48000
FRAME = 960
WARMUP_SECONDS = 4.0
RATES = (0.0, 0.1, 0.3, 0.5, 0.7)


class SpeechTrack(MediaStreamTrack):
    """espeak-ng speech, looped, one 20 ms frame per 20 ms of the monotonic clock."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self._samples = samples
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        self._start = self._start or time.monotonic()
        due = self._start + self._index * FRAME / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        offset = (self._index * FRAME) % (len(self._samples) - FRAME)
        frame = AudioFrame.from_ndarray(
            self._samples[offset : offset + FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._index * FRAME, Fraction(1, RATE)
        self._index += 1
        return frame


@dataclass
class Direction:
    """One way of the call: when each RTP timestamp left the sender and was played."""

    sent_at: dict[int, float] = field(default_factory=dict)
    played_at: dict[int, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    first_timestamp: int | None = None

    def watch_encoder(self, encoder: VoiceEncoder) -> None:
        encode = encoder.encode

        def timed(frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
            payloads, timestamp = encode(frame, force_keyframe)
            if payloads:
                self.sent_at[timestamp] = time.monotonic()
            return payloads, timestamp

        encoder.encode = timed  # type: ignore[method-assign]

    def watch_receiver(self, receiver: AudioReceiver) -> None:
        buffer = receiver.buffer
        take = buffer.take

        def timed(now: float) -> Playout | None:
            playout = take(now)
            if playout is not None and playout.source is not Source.STRETCHED:
                if self.first_timestamp is None:
                    self.first_timestamp = playout.timestamp
                self.played_at[playout.timestamp - self.first_timestamp] = time.monotonic()
            return playout

        buffer.take = timed  # type: ignore[method-assign]

    def gaps(self, since: float) -> int:
        """Times the far end's output paused for more than a frame and a half."""
        times = sorted(played for played in self.played_at.values() if played >= since)
        return sum(1 for a, b in itertools.pairwise(times) if b - a > 1.5 * FRAME / RATE)

    def latency_ms(self, since: float) -> tuple[float, float]:
        """Median and 95th percentile; the first frame played and sent are timestamp 0."""
        delays = sorted(
            (played - self.sent_at[timestamp]) * 1000
            for timestamp, played in self.played_at.items()
            if timestamp in self.sent_at and self.sent_at[timestamp] >= since
        )
        if not delays:
            return float("nan"), float("nan")
        return statistics.median(delays), delays[int(0.95 * (len(delays) - 1))]


@dataclass
class Result:
    peer: str
    loss: float
    counts: dict[str, int]
    expected: int
    latency: tuple[float, float]
    gaps: int
    alive: bool

    def cells(self) -> list[str]:
        counts, expected = self.counts, max(1, self.expected)

        def share(*names: str) -> str:
            return f"{100 * sum(counts.get(name, 0) for name in names) / expected:.1f}"

        return [
            self.peer,
            f"{100 * self.loss:.0f}",
            share("primary"),
            share("fec"),
            share("red"),
            share("primary", "fec", "red"),
            share("concealed"),
            str(self.gaps),
            f"{self.latency[0]:.0f} / {self.latency[1]:.0f}",
            "yes" if self.alive else "**no**",
        ]


HEADER = [
    "receiver", "loss %", "primary %", "FEC %", "RED %", "delivered %", "concealed %",
    "gaps", "latency ms (median / p95)", "alive after the run",
]  # fmt: skip


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


async def engine_call(loss: float, seconds: float, seed: int, voice: np.ndarray) -> Result:
    settings = VoiceSettings()
    alice = RTCPeerConnection(rtc_configuration([]))
    bob = RTCPeerConnection(rtc_configuration([]))
    towards_bob = Direction()
    async with asyncio.TaskGroup() as tasks:
        for pc in (alice, bob):
            pc.addTrack(SpeechTrack(voice))
            pc.on("track", lambda track: tasks.create_task(drain(track)))
        await negotiate(alice, bob)
        loops = [
            tasks.create_task(loop)
            for pc in (alice, bob)
            for loop in aiortc_hooks.attach(pc, settings)
        ]
        encoder = aiortc_hooks.encoder_of(alice.getTransceivers()[0])
        receiver = aiortc_hooks.receiver_of(bob.getTransceivers()[0])
        assert encoder is not None and receiver is not None
        towards_bob.watch_encoder(encoder)
        towards_bob.watch_receiver(receiver)
        await eventually(lambda: bob.connectionState == "connected", 15)
        await asyncio.sleep(WARMUP_SECONDS)
        impair(alice, Loss(loss, seed))
        impair(bob, Loss(loss, seed + 1))
        before = dict(receiver.buffer.counts)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        counts = {
            key: receiver.buffer.counts[key] - before.get(key, 0) for key in receiver.buffer.counts
        }
        alive = alice.connectionState == bob.connectionState == "connected"
        for loop in loops:
            loop.cancel()
        await alice.close()
        await bob.close()
    return Result(
        "vcalld",
        loss,
        counts,
        int(seconds * RATE / FRAME),
        towards_bob.latency_ms(started),
        towards_bob.gaps(started),
        alive,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="of loss per rate")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    args = parser.parse_args()
    restrict_host_addresses(["127.0.0.1"])
    aiortc_hooks.install(VoiceSettings())
    voice = (speech(FAR_END, RATE) * 0.5 * 32767).astype(np.int16)
    rows = []
    for index, loss in enumerate(args.rates):
        result = await engine_call(loss, args.seconds, seed=100 + 2 * index, voice=voice)
        rows.append(result.cells())
        print(" | ".join(result.cells()), flush=True)
    print()
    print(markdown_table(HEADER, rows))
    print(f"\n`make bench-loss` ({args.seconds:.0f} s of loss per rate)")


if __name__ == "__main__":
    asyncio.run(main())
