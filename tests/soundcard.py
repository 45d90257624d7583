"""A sound card made of real libasound: `file` PCMs whose files are named pipes.

The test is the card's clock: a feeder thread writes the microphone signal into one pipe in
real time, a recorder thread drains the speaker pipe in real time, so the daemon's blocking
reads and writes are paced as by hardware. Nothing of libasound or pyalsaaudio is faked.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

F_SETPIPE_SZ = 1031
SPEAKER_PIPE_BYTES = 4096  # the smallest pipe: playback can run at most this far ahead
TICK_SECONDS = 0.01
# The file plugin fills a period it could only partly read from the pipe with silence, so the
# microphone is written a whole 20 ms period at a time (atomic: under PIPE_BUF).
MIC_CHUNK_SECONDS = 0.02

ASOUNDRC = """\
pcm.vcalld_test_mic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{directory}/mic.fifo"
    format "raw"
}}
pcm.vcalld_test_speaker {{
    type file
    slave.pcm "null"
    file "{directory}/speaker.fifo"
    format "raw"
}}
"""


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
    def feeding(self, samples: np.ndarray, rate: int, channels: int) -> Iterator[None]:
        """Play `samples` (looped) into the mic pipe in real time; a full pipe loses audio,
        as a microphone does when nobody reads it."""
        stop = threading.Event()
        fd = self._pipes["mic"]
        chunk = int(rate * MIC_CHUNK_SECONDS) * channels
        data = np.tile(samples, 2).astype("<i2")

        def feed() -> None:
            start, index = time.monotonic(), 0
            while not stop.is_set():
                offset = (index * chunk) % len(samples)
                with suppress(BlockingIOError):  # the pipe is full: that audio is lost
                    os.write(fd, data[offset : offset + chunk].tobytes())
                index += 1
                stop.wait(max(0.0, start + index * MIC_CHUNK_SECONDS - time.monotonic()))

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def record(self, rate: int, channels: int, seconds: float) -> np.ndarray:
        """Drain the speaker pipe at `rate` for `seconds`: interleaved s16 of what was played."""
        fd = self._pipes["speaker"]
        chunk = int(rate * TICK_SECONDS) * channels * 2
        received = bytearray()
        start = time.monotonic()
        for index in range(round(seconds / TICK_SECONDS)):
            with suppress(BlockingIOError):  # nothing was played: an underrun, recorded as such
                received += os.read(fd, chunk)
            time.sleep(max(0.0, start + (index + 1) * TICK_SECONDS - time.monotonic()))
        whole = len(received) // (2 * channels) * 2 * channels
        return np.frombuffer(bytes(received[:whole]), "<i2")
