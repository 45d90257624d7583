"""Audio under random packet loss: what share of 20 ms frames is played as sent, recovered
by Opus FEC or RED, concealed, or missing, how long from source to the far end's track,
and whether the call is still up after a minute.

vcalld to vcalld: two peer connections with vcalld's audio engine (aiortc with
vcalld/call/aiortc_hooks.py) in this process, each sending espeak-ng speech in a loop.
Loss is a fixed pseudo-random pattern on every datagram each side receives (media, RTCP,
ICE), so both directions lose at the rate, starting after a few seconds of clean call.
Latency is from the moment a frame leaves its source track to the moment the far end's
playout hands it on (tracks on one clock; no sound card in the path).

vcalld and Chromium: a daemon (its 440 Hz tone) and headless Chromium (espeak-ng speech
from its fake microphone) in a room; the loss is on every datagram the daemon sends and
receives. Chromium's figures are its getStats: concealed samples, and its jitter buffer's
delay (which is what "playout delay" is for every row: the buffer's hold, not the path).

Run it with `make bench-loss`, in a private network namespace with only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_wav
from tests.helpers import eventually, running
from tests.lossy import Loss, impair
from tests.speech import FAR_END, speech
from vcalld.call import aiortc_hooks
from vcalld.call.audio.playout import Playout, Source
from vcalld.call.audio.receiver import AudioReceiver
from vcalld.call.audio.sender import VoiceEncoder, VoiceSettings
from vcalld.call.ice import restrict_host_addresses, rtc_configuration
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.room.server import RoomServer

RATE = 48000
FRAME = 960
WARMUP_SECONDS = 4.0
SETTLE_SECONDS = 10.0  # the first receiver reports must get through the loss to the sender
RATES = (0.0, 0.1, 0.3, 0.5, 0.7)
NOT_TOLD = "-"


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

    def gaps(self, since: float, dropped: int) -> int:
        """Frames sent that were neither played nor concealed, less the `dropped` frames the
        buffer skipped on purpose to shed delay (a packet may hold 40 or 60 ms, so this
        counts the packets sent, not timestamps)."""
        played = [t for t, at in self.played_at.items() if at >= since]
        first, last = min(played, default=0), max(played, default=-1)
        heard = set(played)
        sent = [t for t, at in self.sent_at.items() if first <= t <= last]
        return sum(t not in heard for t in sent) - dropped

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
    """One receiver at one loss rate; None where that receiver does not tell."""

    receiver: str
    loss: float
    shares: dict[str, float | None]  # percent of the 20 ms frames due in the window
    gaps: int | None
    latency: tuple[float, float] | None
    playout_delay_ms: float
    alive: bool

    def cells(self) -> list[str]:
        def percent(name: str) -> str:
            value = self.shares.get(name)
            return NOT_TOLD if value is None else f"{value:.1f}"

        return [
            self.receiver,
            f"{100 * self.loss:.0f}",
            *(percent(name) for name in ("primary", "fec", "red", "delivered", "concealed")),
            percent("settled"),
            NOT_TOLD if self.gaps is None else str(self.gaps),
            NOT_TOLD if self.latency is None else f"{self.latency[0]:.0f} / {self.latency[1]:.0f}",
            f"{self.playout_delay_ms:.0f}",
            "yes" if self.alive else "**no**",
        ]


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, float]:
    return {
        key: value - before.get(key, 0)
        for key, value in after.items()
        if isinstance(value, int | float)
    }


DELIVERED = ("primary", "fec", "red")


def engine_shares(
    start: dict[str, int], settled: dict[str, int], end: dict[str, int], seconds: float
) -> dict[str, float | None]:
    """Shares of the frames due in the window; "settled": delivered after SETTLE_SECONDS."""
    counts = difference(end, start)
    late = difference(end, settled)

    def share(within: dict[str, float], names: tuple[str, ...], length: float) -> float:
        return 100 * sum(within.get(name, 0) for name in names) / (length * RATE / FRAME)

    return {
        "primary": share(counts, ("primary",), seconds),
        "fec": share(counts, ("fec",), seconds),
        "red": share(counts, ("red",), seconds),
        "delivered": share(counts, DELIVERED, seconds),
        "concealed": share(counts, ("concealed",), seconds),
        "settled": share(late, DELIVERED, seconds - SETTLE_SECONDS),
    }


def chromium_shares(
    start: dict[str, Any], settled: dict[str, Any], end: dict[str, Any]
) -> dict[str, float | None]:
    """From Chromium's getStats: concealed samples, less the silence it made up on purpose."""

    def concealed(within: dict[str, float]) -> float:
        made_up = within.get("concealedSamples", 0) - within.get("silentConcealedSamples", 0)
        return 100 * made_up / max(1.0, within.get("totalSamplesReceived", 0))

    counts, late = difference(end, start), difference(end, settled)
    return {
        "delivered": 100 - concealed(counts),
        "concealed": concealed(counts),
        "settled": 100 - concealed(late),
    }


HEADER = [
    "receiver", "loss %", "primary %", "FEC %", "RED %", "delivered %", "concealed %",
    "delivered % after 10 s", "unconcealed gaps", "source to far track ms (median / p95)",
    "playout delay ms", "call up after",
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
            tasks.create_task(loop())
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
        start = dict(receiver.buffer.counts)
        started = time.monotonic()
        delays = await sample_delay(receiver, SETTLE_SECONDS)
        settled = dict(receiver.buffer.counts)
        delays += await sample_delay(receiver, seconds - SETTLE_SECONDS)
        end = dict(receiver.buffer.counts)
        alive = alice.connectionState == bob.connectionState == "connected"
        for loop in loops:
            loop.cancel()
        await alice.close()
        await bob.close()
    return Result(
        "vcalld from vcalld",
        loss,
        engine_shares(start, settled, end, seconds),
        towards_bob.gaps(started, end.get("dropped", 0) - start.get("dropped", 0)),
        towards_bob.latency_ms(started),
        1000 * statistics.median(delays),
        alive,
    )


async def sample_delay(receiver: AudioReceiver, seconds: float) -> list[float]:
    """The playout delay twice a second for `seconds`."""
    delays = []
    for _ in range(int(seconds * 2)):
        await asyncio.sleep(0.5)
        delays.append(receiver.buffer.delay)
    return delays


async def chromium_calls(rates: list[float], seconds: float, folder: Path) -> list[Result]:
    """One daemon and one Chromium per rate, so each rate starts from a fresh call."""
    wav = write_wav(folder / "speech.wav", 0.5 * speech(FAR_END, RATE), RATE)
    results = []
    for index, loss in enumerate(rates):
        server = RoomServer(RoomServerConfig(port=0, anonymous=True))
        await server.start()
        try:
            results += await chromium_call(
                server, loss, seconds, wav=wav, folder=folder, seed=200 + index
            )
        finally:
            await server.stop()
    return results


async def chromium_call(
    server: RoomServer, loss: float, seconds: float, *, wav: Path, folder: Path, seed: int
) -> list[Result]:
    config = VcalldConfig.model_validate(
        {
            "device": {"id": "kiosk"},
            "call": {"server_url": f"ws://127.0.0.1:{server.port}/ws", "room": "bench",
                     "ice_host_addresses": ["127.0.0.1"]},
            "video": {"enabled": False},
            "control": {"socket": str(folder / "kiosk.sock")},
        }
    )  # fmt: skip
    query = urlencode({"room": "bench", "name": "chromium", "autojoin": "1"})
    url = f"http://127.0.0.1:{server.port}/?{query}"
    async with running(config) as kiosk, chromium_page(url, audio_wav=wav) as page:
        pc = await eventually(
            lambda: next(iter(kiosk._backend.peer_connections().values()), None), 20
        )
        await eventually(lambda: pc.connectionState == "connected", 20)
        transceiver = next(t for t in pc.getTransceivers() if t.kind == "audio")
        receiver = aiortc_hooks.receiver_of(transceiver)
        assert receiver is not None
        await asyncio.sleep(WARMUP_SECONDS)
        impair(pc, Loss(loss, seed), outbound=True)
        ours = [dict(receiver.buffer.counts)]
        theirs = [await chromium_inbound(page)]
        delays = await sample_delay(receiver, SETTLE_SECONDS)
        ours.append(dict(receiver.buffer.counts))
        theirs.append(await chromium_inbound(page))
        delays += await sample_delay(receiver, seconds - SETTLE_SECONDS)
        ours.append(dict(receiver.buffer.counts))
        theirs.append(await chromium_inbound(page))
        alive = pc.connectionState == "connected" and theirs[-1].get("state") == "connected"
    return [
        Result(
            "Chromium from vcalld",
            loss,
            chromium_shares(theirs[0], theirs[1], theirs[2]),
            None,
            None,
            1000 * chromium_hold(theirs[0], theirs[-1]),
            alive,
        ),
        Result(
            "vcalld from Chromium",
            loss,
            engine_shares(ours[0], ours[1], ours[2], seconds),
            None,
            None,
            1000 * statistics.median(delays),
            alive,
        ),
    ]


def chromium_hold(start: dict[str, Any], end: dict[str, Any]) -> float:
    """Chromium's jitter buffer delay per sample played, in seconds."""
    within = difference(end, start)
    return within.get("jitterBufferDelay", 0) / max(1.0, within.get("jitterBufferEmittedCount", 0))


async def chromium_inbound(page: Page) -> dict[str, Any]:
    """Chromium's getStats for the audio it receives, and its connection state."""
    for entry in (await page.evaluate("vcall.stats()")).values():
        return {**entry["inbound"].get("audio", {}), "state": entry["state"]}
    return {}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="of loss per rate")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    parser.add_argument("--no-chromium", action="store_true", help="vcalld to vcalld only")
    args = parser.parse_args()
    restrict_host_addresses(["127.0.0.1"])
    aiortc_hooks.install(VoiceSettings())
    voice = (speech(FAR_END, RATE) * 0.5 * 32767).astype(np.int16)
    results = []
    for index, loss in enumerate(args.rates):
        results.append(await engine_call(loss, args.seconds, seed=100 + 2 * index, voice=voice))
        print(" | ".join(results[-1].cells()), flush=True)
    if not args.no_chromium:
        with tempfile.TemporaryDirectory() as folder:
            for result in await chromium_calls(args.rates, args.seconds, Path(folder)):
                results.append(result)
                print(" | ".join(result.cells()), flush=True)
    rows = [result.cells() for result in results]
    print()
    print(markdown_table(HEADER, rows))
    print(f"\n`make bench-loss` ({args.seconds:.0f} s of loss per rate)")


if __name__ == "__main__":
    asyncio.run(main())
