"""Pictures for the screen process, in memory both processes map: each new picture is copied
once on each side (into the arena, out into a frame), not pickled, sent through a socket and
unpickled (measured: bench/camera_display.py). The daemon fills the arena only between
scenes, while the screen process waits for the next one, so neither needs a lock."""

from __future__ import annotations

import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from av import VideoFrame

SHARED_MEMORY = Path("/dev/shm")
INITIAL_BYTES = 1 << 22


@dataclass(frozen=True)
class Picture:
    """Where a yuv420p picture's planes lie in the arena, one after the other, unpadded."""

    width: int
    height: int
    offset: int

    def planes(self) -> list[tuple[int, int]]:
        """(columns, rows) of each plane."""
        chroma = ((self.width + 1) // 2, (self.height + 1) // 2)
        return [(self.width, self.height), chroma, chroma]

    @property
    def size(self) -> int:
        return sum(columns * rows for columns, rows in self.planes())


class PictureArena:
    """The daemon's side: a file in /dev/shm, grown as a scene needs. `path` is unlinked
    once the screen process has opened it, so nothing is left behind by a crash."""

    def __init__(self) -> None:
        folder = SHARED_MEMORY if SHARED_MEMORY.is_dir() else None
        self._fd, name = tempfile.mkstemp(prefix="vcalld-screen-", dir=folder)
        self.path = Path(name)
        self.size = 0
        self._map: mmap.mmap | None = None
        self._used = 0
        self._grow(INITIAL_BYTES)

    def begin_scene(self) -> None:
        """The screen process has taken the last scene's pictures: the space is free again."""
        self._used = 0

    def put(self, frame: VideoFrame) -> Picture:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        picture = Picture(frame.width, frame.height, self._used)
        if self._used + picture.size > self.size:
            self._grow(max(2 * self.size, self._used + picture.size))
        assert self._map is not None
        offset = picture.offset
        for plane, (columns, rows) in zip(frame.planes, picture.planes(), strict=True):
            source = np.frombuffer(memoryview(plane), np.uint8).reshape(rows, plane.line_size)[
                :, :columns
            ]
            target = np.frombuffer(self._map, np.uint8, columns * rows, offset)
            target.reshape(rows, columns)[:] = source
            offset += columns * rows
        self._used = offset
        return picture

    def _grow(self, size: int) -> None:
        """A new mapping: the screen process maps the new size when a scene says it."""
        if self._map is not None:
            self._map.close()
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self.size = size

    def forget_path(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.forget_path()
        if self._map is not None:
            self._map.close()
        os.close(self._fd)


class ArenaReader:
    """The screen process's side of the same file."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._map: mmap.mmap | None = None
        self._size = 0

    def frame(self, picture: Picture, arena_size: int) -> VideoFrame:
        if arena_size != self._size:
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(self._fd, arena_size)
            self._size = arena_size
        assert self._map is not None
        frame = VideoFrame(picture.width, picture.height, "yuv420p")
        offset = picture.offset
        for plane, (columns, rows) in zip(frame.planes, picture.planes(), strict=True):
            source = np.frombuffer(self._map, np.uint8, columns * rows, offset)
            target = np.frombuffer(memoryview(plane), np.uint8).reshape(rows, plane.line_size)
            target[:, :columns] = source.reshape(rows, columns)
            offset += columns * rows
        return frame

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        os.close(self._fd)
