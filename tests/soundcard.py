"""A sound card made of real libasound: `file` PCMs whose files are named pipes.

The test is the card's clock: a feeder thread writes the microphone signal into one pipe in
real time, a recorder thread drains the speaker pipe in real time, so the daemon's blocking
reads and writes are paced as by hardware. Nothing of libasound or pyalsaaudio is faked.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

from vcalld.media.sinks.speaker import Speaker

F_SETPIPE_SZ = 1031
SPEAKER_PIPE_BYTES = 4096  # the smallest pipe: playback can run at most this far ahead
TICK_SECONDS = 0.01
# The file plugin fills a period it could only partly read from the pipe with silence, so the
# microphone is written a whole period of its reader at a time (atomic: under PIPE_BUF): 20 ms
# for the daemon's default period.
MIC_CHUNK_SECONDS = 0.02

ASOUNDRC = """\
pcm.vcalld_test_mic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{directory}/mic.fifo"
    format "raw"
    hint {{ show on; description "vcalld test microphone" }}
}}
pcm.vcalld_test_speaker {{
    type file
    slave.pcm "null"
    file "{directory}/speaker.fifo"
    format "raw"
    hint {{ show on; description "vcalld test speaker" }}
}}
# For clients that ask for their own format (Chromium): converted to the card's.
pcm.vcalld_test_client_mic {{
    type plug
    slave {{ pcm "vcalld_test_mic"; rate 48000; channels 1; format S16_LE }}
}}
pcm.vcalld_test_client_speaker {{
    type plug
    slave {{ pcm "vcalld_test_speaker"; rate 48000; channels 2; format S16_LE }}
}}
"""


class PcmTrack(MediaStreamTrack):
    """What aiortc's Opus decoder hands over: 20 ms of 48 kHz stereo s16 in real time, from
    `samples` (interleaved stereo), looped or followed by silence."""

    kind = "audio"

    def __init__(self, samples: np.ndarray, loop: bool) -> None:
        super().__init__()
        self._samples, self._repeat = samples.astype(np.int16), loop
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        self._start = self._start or loop.time()
        await asyncio.sleep(max(0.0, self._start + self._index * 0.02 - loop.time()))
        offset = self._index * 1920
        if self._repeat:
            offset %= len(self._samples)
        chunk = np.zeros(1920, np.int16)
        part = self._samples[offset : offset + 1920]
        chunk[: len(part)] = part
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._index * 960, Fraction(1, 48000)
        self._index += 1
        return frame


@dataclass(frozen=True)
class Room:
    """An echo path: the speaker heard by the microphone `delay` seconds later at `gain`."""

    delay: float
    gain: float

    def delay_frames(self, rate: int) -> int:
        return int(self.delay * rate)


def tone(
    frequency: float, rate: int, channels: int, seconds: float, amplitude: float = 0.3
) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Interleaved s16 samples of a sine, the same on every channel."""
    t = np.arange(int(rate * seconds)) / rate
    wave = (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return np.repeat(wave, channels)


class PipeSoundCard:
    MIC = "vcalld_test_mic"
    SPEAKER = "vcalld_test_speaker"
    CLIENT_MIC = "vcalld_test_client_mic"  # 48 kHz mono s16 whatever the client asks
    CLIENT_SPEAKER = "vcalld_test_client_speaker"  # 48 kHz stereo s16

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "asoundrc").write_text(ASOUNDRC.format(directory=directory))
        self.config_path = f"/usr/share/alsa/alsa.conf:{directory}/asoundrc"
        self._pipes: dict[str, int] = {}

    def plug(self, name: str) -> None:
        """Connect the "mic" or the "speaker": a fresh pipe, held open by the test, so the
        daemon's open never waits and its reads and writes never see end-of-file."""
        self.unplug(name)
        path = self.directory / f"{name}.fifo"
        os.mkfifo(path)
        self._pipes[name] = fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        if name == "speaker":
            fcntl.fcntl(fd, F_SETPIPE_SZ, SPEAKER_PIPE_BYTES)

    def unplug(self, name: str) -> None:
        """Take the device away: opening its PCM fails until it is plugged again."""
        (self.directory / f"{name}.fifo").unlink(missing_ok=True)
        fd = self._pipes.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for name in list(self._pipes):
            self.unplug(name)

    @contextmanager
    def feeding(
        self, samples: np.ndarray, rate: int, channels: int, written_at: list[float] | None = None
    ) -> Iterator[None]:
        """Play `samples` (looped) into the mic pipe in real time; a full pipe loses audio,
        as a microphone does when nobody reads it. `written_at` gets each 20 ms chunk's time."""
        chunk = int(rate * MIC_CHUNK_SECONDS) * channels
        data = np.tile(samples, 2).astype("<i2")

        def feed(index: int) -> None:
            offset = (index * chunk) % len(samples)
            self._to_mic(data[offset : offset + chunk])
            if written_at is not None:
                written_at.append(time.monotonic())

        with _paced(feed, MIC_CHUNK_SECONDS):
            yield

    @contextmanager
    def echoing(
        self,
        rate: int,
        speaker_channels: int,
        room: Room,
        near: np.ndarray,
        near_at: float,
        *,
        chunk_seconds: float = MIC_CHUNK_SECONDS,
    ) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """The room around a hands-free device (speaker and mono mic both at `rate`): what
        the speaker plays comes back into the mic through `room`, and a local talker says
        `near` (floats, full scale 1.0) from `near_at` seconds on. Yields the list to which
        each `chunk_seconds` written to the mic (the device's read size) is appended, as its
        parts (echo, near)."""
        chunk = int(rate * chunk_seconds)
        chunk_bytes = chunk * speaker_channels * 2
        speaker, played = self._pipes["speaker"], bytearray()
        echo_line = np.zeros(room.delay_frames(rate) + chunk)
        near_from = int(near_at / chunk_seconds)
        written: list[tuple[np.ndarray, np.ndarray]] = []

        def step(index: int) -> None:
            nonlocal echo_line
            with suppress(BlockingIOError):  # nothing was played: that is silence
                played.extend(os.read(speaker, chunk_bytes - len(played)))
            heard = np.zeros(chunk)
            if len(played) == chunk_bytes:
                frames = np.frombuffer(bytes(played), "<i2").reshape(-1, speaker_channels)
                heard = frames.mean(axis=1) / 32768.0
                played.clear()
            echo_line = np.concatenate([echo_line[chunk:], heard * room.gain])
            echo = echo_line[:chunk]
            offset = (index - near_from) * chunk
            talker = near[offset : offset + chunk] if 0 <= offset < len(near) else near[:0]
            spoken = np.zeros(chunk)
            spoken[: len(talker)] = talker
            self._to_mic((np.clip(echo + spoken, -1, 1) * 32767).astype("<i2"))
            written.append((echo, spoken))

        with _paced(step, chunk_seconds):
            yield written

    def _to_mic(self, samples: np.ndarray) -> None:
        with suppress(BlockingIOError):  # the pipe is full: that audio is lost
            os.write(self._pipes["mic"], samples.tobytes())

    @contextmanager
    def taping(self, rate: int, channels: int) -> Iterator[Tape]:
        """Drain the speaker pipe at `rate` for a whole block, as a card's clock runs on
        whoever listens: between `record` calls the device would stall."""
        fd = self._pipes["speaker"]
        tape = Tape(rate, channels)
        chunk = int(rate * TICK_SECONDS) * channels * 2

        def drain(index: int) -> None:
            with suppress(BlockingIOError):  # nothing was played: an underrun
                tape.add(os.read(fd, chunk))

        with _paced(drain, TICK_SECONDS):
            yield tape

    def record(
        self,
        rate: int,
        channels: int,
        seconds: float,
        read_at: list[tuple[float, int]] | None = None,
        speed: float = 1.0,
    ) -> np.ndarray:
        """Drain the speaker pipe at `rate` for `seconds`: interleaved s16 of what was played.
        `read_at` gets (time, bytes received so far) after each read. `speed` is the card's
        clock against real time: 1.02 plays 2 % fast, as a card with its own crystal may."""
        fd = self._pipes["speaker"]
        chunk = int(rate * TICK_SECONDS) * channels * 2
        tick = TICK_SECONDS / speed
        received = bytearray()
        start = time.monotonic()
        for index in range(round(seconds / tick)):
            with suppress(BlockingIOError):  # nothing was played: an underrun, recorded as such
                received += os.read(fd, chunk)
            if read_at is not None:
                read_at.append((time.monotonic(), len(received)))
            time.sleep(max(0.0, start + (index + 1) * tick - time.monotonic()))
        whole = len(received) // (2 * channels) * 2 * channels
        return np.frombuffer(bytes(received[:whole]), "<i2")


class Tape:
    """What the speaker played, drained from its pipe in real time by `PipeSoundCard.taping`."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self._received = bytearray()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._received += data

    def latest(self, seconds: float) -> np.ndarray:
        """The last `seconds` played, interleaved s16."""
        frame_bytes = 2 * self.channels
        with self._lock:
            whole = len(self._received) // frame_bytes * frame_bytes
            start = max(0, whole - int(seconds * self.rate) * frame_bytes)
            return np.frombuffer(bytes(self._received[start:whole]), "<i2")


@contextmanager
def _paced(step: Callable[[int], None], period: float) -> Iterator[None]:
    """Call `step(0)`, `step(1)`, … every `period` seconds in a thread, for a block."""
    stop = threading.Event()

    def run() -> None:
        start, index = time.monotonic(), 0
        while not stop.is_set():
            step(index)
            index += 1
            stop.wait(max(0.0, start + index * period - time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@asynccontextmanager
async def playing(speaker: Speaker, tracks: Mapping[str, MediaStreamTrack]) -> AsyncIterator[None]:
    """Run `speaker` with `tracks` (participant id → track) for the length of a block."""
    tasks = [asyncio.create_task(speaker.run())] + [
        asyncio.create_task(speaker.play(participant_id, track))
        for participant_id, track in tracks.items()
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
