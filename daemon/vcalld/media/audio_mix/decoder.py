"""A mix's file or stream decoded in its own thread, at most two seconds ahead of the call.

Everything FFmpeg can read goes; what it cannot (a missing host, a broken stream, a file
without audio) ends the mix with the reason, never the daemon. A seek is a request the thread
takes up between frames: parts decoded before it carry an older `generation` and are dropped
by the player, and a source decoded to its end is decoded again from where a seek points
until the player has taken the end.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from av.audio.resampler import AudioResampler

from vcalld.media.audio_mix.sources import MixSource
from vcalld.media.layout import layout_of, s16_samples
from vcalld.media.own_thread import run_in_own_thread

RATE = 48000  # what the decoder hands on; each consumer resamples to its own format
MAX_CHANNELS = 2  # more are mixed down to stereo; mono stays mono, at its own level
AHEAD_SECONDS = 2.0  # decoded and waiting: rides out a stalling stream, costs 384 KB
POLL_SECONDS = 0.05  # how soon a waiting thread notices a stop or a seek
OPEN_TIMEOUT_SECONDS = 10.0  # connecting to a URL, and each read from it

Samples = np.ndarray[Any, np.dtype[np.int16]]


@dataclass(frozen=True)
class Part:
    samples: Samples  # one row per frame, at RATE, in the source's channels (1 or 2)
    start: float  # seconds into the source
    loop: int  # 1 for the first time through
    generation: int


@dataclass(frozen=True)
class End:
    error: str | None  # None: the last loop played to its end
    generation: int


class _SeekRequestedError(Exception):
    """A seek was requested: decoding restarts there."""


class _Parts:
    """Parts and the end, bounded by the audio they hold rather than by their count (FFmpeg
    decodes 20-100 ms a frame, depending on the codec)."""

    def __init__(self, limit_frames: int) -> None:
        self._items: deque[Part | End] = deque()
        self._frames = 0
        self._limit = limit_frames
        self._room = threading.Condition()

    def put(self, item: Part | End, timeout: float) -> bool:
        """False if there was no room within `timeout`; an `End` always fits."""
        with self._room:
            if isinstance(item, Part):
                if not self._room.wait_for(lambda: self._frames < self._limit, timeout):
                    return False
                self._frames += len(item.samples)
            self._items.append(item)
            return True

    def get(self) -> Part | End | None:
        with self._room:
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item, Part):
                self._frames -= len(item.samples)
                self._room.notify()
            return item


class MixDecoder:
    def __init__(self, source: MixSource, loops: int | None, start: float = 0.0) -> None:
        """`loops`: how many times to play the source, None for ever."""
        self.source = source
        self.loops = loops
        self.duration: float | None = None  # once opened, if the source says
        self.opened = threading.Event()
        self.generation = 0
        self._pending_seek: float | None = start or None
        self._lock = threading.Lock()
        self._parts = _Parts(int(AHEAD_SECONDS * RATE))
        self._stopping = threading.Event()

    def next(self) -> Part | End | None:
        """The next part for the player, or None if none is decoded yet (loop side)."""
        return self._parts.get()

    def seek(self, seconds: float) -> None:
        """From the loop: parts from before are stale as soon as this returns."""
        with self._lock:
            self.generation += 1
            self._pending_seek = seconds

    def close(self) -> None:
        """The player took the end: the thread may go."""
        self._stopping.set()

    async def run(self) -> None:
        """Decode until closed or cancelled; a bug is raised here."""
        await run_in_own_thread("audio-mix", self._decode, self._stopping)

    def _decode(self) -> None:
        """Each loop from a fresh open (a stream need not seek back), then the end; and again
        from wherever a seek points, until closed."""
        loop = 1
        while not self._stopping.is_set():
            container = self._open()
            if container is None:
                return
            with container:
                try:
                    self._play(container, container.streams.audio[0], loop)
                except (av.FFmpegError, OSError) as error:
                    self._end(f"{self.source.shown} broke off: {_reason(error)}")
                    return
            if self._stopping.is_set():
                return
            if self.loops is None or loop < self.loops:
                loop += 1
                continue
            try:
                self._put(End(None, self.generation))
            except _SeekRequestedError:
                continue
            self._wait_for_seek()

    def _open(self) -> Any:
        """The source opened, or None once the end says why it cannot be."""
        try:
            container = av.open(
                self.source.target,
                options={"protocol_whitelist": self.source.protocols},
                timeout=OPEN_TIMEOUT_SECONDS,
            )
        except (av.FFmpegError, OSError) as error:
            self._end(f"cannot open {self.source.shown}: {_reason(error)}")
            return None
        if not container.streams.audio:
            container.close()
            self._end(f"{self.source.shown} holds no audio")
            return None
        if container.duration is not None:
            self.duration = container.duration / av.time_base
        self.opened.set()
        return container

    def _play(self, container: Any, stream: Any, loop: int) -> None:
        """The source to its end (or a stop), following seeks."""
        while True:
            with self._lock:
                seek, self._pending_seek = self._pending_seek, None
                generation = self.generation
            if seek is not None:
                container.seek(round(seek * av.time_base))
            try:
                self._decode_from(container, stream, loop, generation, after=seek or 0.0)
                return
            except _SeekRequestedError:
                continue

    def _decode_from(
        self, container: Any, stream: Any, loop: int, generation: int, after: float
    ) -> None:
        """Queue the source's audio from here to its end; a seek keyframe before `after` is
        decoded but not queued."""
        channels = min(stream.codec_context.channels, MAX_CHANNELS)
        resampler = AudioResampler(format="s16", layout=layout_of(channels), rate=RATE)
        position: float | None = None
        for frame in container.decode(stream):
            if self._stopping.is_set():
                return
            if frame.time is not None:
                position = frame.time
            elif position is None:
                position = after
            for resampled in resampler.resample(frame):
                part = Part(s16_samples(resampled).copy(), position, loop, generation)
                position += resampled.samples / RATE
                if part.start + resampled.samples / RATE > after:
                    self._put(part)
        for resampled in resampler.resample(None):
            self._put(Part(s16_samples(resampled).copy(), position or after, loop, generation))

    def _end(self, error: str) -> None:
        self._parts.put(End(error, self.generation), POLL_SECONDS)

    def _put(self, item: Part | End) -> None:
        """Wait for room; a stop returns, a seek raises `_SeekRequestedError` (stale item)."""
        while not self._stopping.is_set():
            if item.generation != self.generation:
                raise _SeekRequestedError
            if self._parts.put(item, POLL_SECONDS):
                return

    def _wait_for_seek(self) -> None:
        """After the end: a seek before the player takes it plays on from there."""
        while not self._stopping.wait(POLL_SECONDS):
            if self._pending_seek is not None:
                return


def _reason(error: Exception) -> str:
    """FFmpeg's reason without the file name it adds, which for a URL holds its query."""
    return getattr(error, "strerror", None) or type(error).__name__
