"""One source, many peer connections: each subscriber gets its own bounded slot."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

from vcalld.media.sources.base import Media

SPLIT_DEPTH = 10  # frames per consumer: 200 ms of audio


class Fanout:
    """Hands every published frame to each subscribed track.

    A slow subscriber loses its oldest frames instead of building latency (aiortc's
    `MediaRelay` buffers without bound). Video keeps only the newest frame; audio keeps a few
    so that a short stall of one encoder does not punch holes into the sound.
    """

    def __init__(self, kind: str, depth: int) -> None:
        self.kind = kind
        self._depth = depth
        self._subscribers: set[FanoutTrack] = set()

    def subscribe(self) -> FanoutTrack:
        track = FanoutTrack(self, self._depth)
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: FanoutTrack) -> None:
        self._subscribers.discard(track)

    def publish(self, frame: Media) -> None:
        for track in self._subscribers:
            track.offer(frame)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class FanoutTrack(MediaStreamTrack):
    def __init__(self, fanout: Fanout, depth: int) -> None:
        super().__init__()
        self.kind = fanout.kind
        self._fanout = fanout
        self._frames: deque[Media] = deque(maxlen=depth)
        self._ready = asyncio.Event()

    def offer(self, frame: Media) -> None:
        self._frames.append(frame)
        self._ready.set()

    async def recv(self) -> Media:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._fanout.unsubscribe(self)
        self._ready.set()


async def split(
    track: MediaStreamTrack, *consumers: Callable[[MediaStreamTrack], Coroutine[Any, Any, None]]
) -> None:
    """Let several consumers read one track (the renderer and the speaker); each gets its own
    bounded copy, so a slow one loses its oldest frames without holding back the others."""
    fanout = Fanout(track.kind, depth=SPLIT_DEPTH)
    branches = [fanout.subscribe() for _ in consumers]
    async with asyncio.TaskGroup() as tasks:
        for consume, branch in zip(consumers, branches, strict=True):
            tasks.create_task(consume(branch), name=f"{track.kind}-consumer")
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, Frame)
                fanout.publish(frame)
        except MediaStreamError:
            pass
        finally:
            for branch in branches:
                branch.stop()
