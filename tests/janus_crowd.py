"""Lightweight VideoRoom participants for group-call tests: each publishes the vcalld test
pattern and a tone through plain aiortc, subscribes to every other publisher's video, and
prints once a second, as a JSON line, the frame rate it receives from each.

    python -m tests.janus_crowd --names a,b,c --room 1234 --width 320 --height 180 --fps 25

`--watch kiosk` subscribes only to the publishers named so (a large crowd, whose every
member decoding every other would need more cores than a test machine has).

Run in its own process (several of them spread a crowd over the cores); it ends after
`--seconds`, or when terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fractions import Fraction

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

from tests.janus import ICE_ADDRESS, WS_URL
from vcalld.call.ice import restrict_host_addresses
from vcalld.call.janus.session import Handle, JanusSession, SessionSettings
from vcalld.call.janus.videoroom import PLUGIN, Feed, Room, feeds
from vcalld.config.models import JanusConfig
from vcalld.media.pattern import PatternPainter

TONE_HZ = 880.0
FPS_WINDOW_SECONDS = 2.0


class PatternTrack(VideoStreamTrack):
    def __init__(self, width: int, height: int, fps: int) -> None:
        super().__init__()
        self._painter = PatternPainter(width, height)
        self._fps = fps
        self._index = 0
        self._began: float | None = None

    async def recv(self) -> VideoFrame:
        self._began = self._began or time.monotonic()
        due = self._began + self._index / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = VideoFrame.from_ndarray(self._painter.paint(self._index), format="yuv420p")
        frame.pts, frame.time_base = self._index * 90000 // self._fps, Fraction(1, 90000)
        self._index += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """20 ms frames of a sine at 48 kHz, paced in real time."""

    def __init__(self) -> None:
        super().__init__()
        self._sent = 0
        self._began: float | None = None

    async def recv(self) -> AudioFrame:
        self._began = self._began or time.monotonic()
        await asyncio.sleep(max(0.0, self._began + self._sent / 48000 - time.monotonic()))
        t = (self._sent + np.arange(960)) / 48000
        samples = (8000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.pts, frame.sample_rate, frame.time_base = self._sent, 48000, Fraction(1, 48000)
        self._sent += 960
        return frame


class FrameRates:
    """The frame rate received from each publisher, over the last FPS_WINDOW_SECONDS."""

    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}

    def fps(self) -> dict[str, float]:
        now = time.monotonic()
        rates = {}
        for publisher, arrivals in self._arrivals.items():
            recent = [t for t in arrivals if now - t <= FPS_WINDOW_SECONDS]
            rates[publisher] = (len(recent) - 1) / (now - recent[0]) if len(recent) > 1 else 0.0
        return rates

    async def count(self, publisher: str, track: MediaStreamTrack) -> None:
        """Takes (and so decodes) `track`'s frames until it ends."""
        arrivals = self._arrivals.setdefault(publisher, deque(maxlen=256))
        try:
            while True:
                await track.recv()
                arrivals.append(time.monotonic())
        except MediaStreamError:
            return


class Participant:
    def __init__(
        self, name: str, room: Room, size: tuple[int, int, int], watch: set[str] | None
    ) -> None:
        self.name = name
        self.room = room
        self.size = size
        self.watched = watch
        self.rates = FrameRates()
        self.connections: list[RTCPeerConnection] = []

    async def run(self, session: JanusSession, tasks: asyncio.TaskGroup) -> None:
        handle = await session.attach(PLUGIN)
        joined = await self.room.join(handle, self.name)
        private_id = joined.data.get("private_id")
        publisher = RTCPeerConnection()
        self.connections.append(publisher)
        publisher.addTransceiver(PatternTrack(*self.size), direction="sendonly")
        publisher.addTransceiver(ToneTrack(), direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        local = publisher.localDescription
        reply = await handle.message({"request": "publish"}, {"type": "offer", "sdp": local.sdp})
        assert reply.jsep is not None
        await publisher.setRemoteDescription(RTCSessionDescription(**reply.jsep))
        publishers = {entry["id"]: entry for entry in joined.data.get("publishers", [])}
        for feed in feeds(joined.data):
            tasks.create_task(self.watch(session, feed, publishers[feed.id], private_id, tasks))
        while True:
            event = await handle.events.get()
            data = event.get("plugindata", {}).get("data", {})
            entries = {entry["id"]: entry for entry in data.get("publishers", [])}
            for feed in feeds(data):
                tasks.create_task(self.watch(session, feed, entries[feed.id], private_id, tasks))

    async def watch(
        self,
        session: JanusSession,
        feed: Feed,
        entry: dict[str, object],
        private_id: int | None,
        tasks: asyncio.TaskGroup,
    ) -> None:
        """Subscribes to the feed's video only and counts the frames that decode."""
        if self.watched is not None and feed.display not in self.watched:
            return
        streams = entry.get("streams", [])
        assert isinstance(streams, list)
        video = [s["mid"] for s in streams if s.get("type") == "video"]
        handle: Handle = await session.attach(PLUGIN)
        body = {
            "request": "join",
            "ptype": "subscriber",
            "room": self.room.id,
            "private_id": private_id,
            "streams": [{"feed": feed.id, "mid": mid} for mid in video],
        }
        reply = await handle.message(body)
        assert reply.jsep is not None
        pc = RTCPeerConnection()
        self.connections.append(pc)
        pc.on("track", lambda track: tasks.create_task(self.rates.count(feed.display, track)))

        await pc.setRemoteDescription(RTCSessionDescription(**reply.jsep))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription
        await handle.message({"request": "start"}, {"type": "answer", "sdp": answer.sdp})


class Crowd:
    """What the members report: per member, the frame rate it gets from each publisher."""

    def __init__(self) -> None:
        self.fps: dict[str, dict[str, float]] = {}

    async def read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            report = json.loads(line)
            self.fps[report["name"]] = report["fps"]

    def receive(self, members: set[str], publishers: set[str], min_fps: float) -> bool:
        """Each of `members` gets each of `publishers` but itself at `min_fps` or more."""
        for name in members:
            rates = self.fps.get(name, {})
            if set(rates) != publishers - {name} or min(rates.values()) < min_fps:
                return False
        return True


@asynccontextmanager
async def crowd_processes(
    module: str, names: list[str], arguments: list[str]
) -> AsyncIterator[Crowd]:
    """`python -m module --names ...` for `names`, three to a process (spread over the
    cores), their reports read as they come; terminated at the end."""
    processes = []
    watched = Crowd()
    try:
        async with asyncio.TaskGroup() as tasks:
            for start in range(0, len(names), 3):
                command = [
                    sys.executable,
                    "-m",
                    module,
                    "--names",
                    ",".join(names[start : start + 3]),
                ]
                process = await asyncio.create_subprocess_exec(
                    *command, *arguments, stdout=asyncio.subprocess.PIPE
                )
                processes.append(process)
                tasks.create_task(watched.read(process))  # ends with the process
            try:
                yield watched
            finally:
                for process in processes:
                    if process.returncode is None:
                        process.terminate()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


@asynccontextmanager
async def crowd(
    names: list[str], room: str, size: tuple[int, int, int], watch: str = ""
) -> AsyncIterator[Crowd]:
    """`names` in `room` through the test's Janus, watching the publishers named in `watch`
    (everyone when empty)."""
    width, height, fps = size
    arguments = ["--room", room, "--watch", watch, "--width", str(width)]
    arguments += ["--height", str(height), "--fps", str(fps)]
    async with crowd_processes("tests.janus_crowd", names, arguments) as watched:
        yield watched


async def report(participants: dict[str, FrameRates]) -> None:
    """Once a second, a JSON line per participant: what it receives from whom, at what rate."""
    while True:
        await asyncio.sleep(1)
        for name, rates in participants.items():
            sys.stdout.write(json.dumps({"name": name, "fps": rates.fps()}) + "\n")
        sys.stdout.flush()


async def main(arguments: argparse.Namespace) -> None:
    restrict_host_addresses([ICE_ADDRESS])
    room = Room(arguments.room, JanusConfig())
    size = (arguments.width, arguments.height, arguments.fps)
    watch = set(arguments.watch.split(",")) if arguments.watch else None
    names = arguments.names.split(",")
    participants = [Participant(name, room, size, watch) for name in names]
    async with aiohttp.ClientSession() as http:
        settings = SessionSettings()
        sessions = [await JanusSession.connect([WS_URL], http, settings) for _ in participants]
        try:
            async with asyncio.timeout(arguments.seconds), asyncio.TaskGroup() as tasks:
                for participant, session in zip(participants, sessions, strict=True):
                    tasks.create_task(session.run())
                    tasks.create_task(participant.run(session, tasks))
                tasks.create_task(report({p.name: p.rates for p in participants}))
        except TimeoutError:
            pass
        finally:
            for participant in participants:
                for pc in participant.connections:
                    await pc.close()
            for session in sessions:
                await session.destroy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", required=True)
    parser.add_argument("--room", default="1234")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--watch", default="", help="publishers to subscribe to (all)")
    asyncio.run(main(parser.parse_args()))
