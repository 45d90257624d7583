"""What the screen should show for each participant, told by the media themselves: the newest
picture, and whether the camera is off or the microphone muted (the call's signalling carries
neither; a browser or a vcalld that mutes sends black frames and digital silence)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from av import AudioFrame, VideoFrame

from vcalld.media.frames import BLACK_LUMA
from vcalld.media.layout import picture_plane, s16_samples
from vcalld.state import screen_of, sharer_of

VIDEO_GONE_SECONDS = 1.0  # no picture this long: the camera is off (or the network is)
MUTED_SECONDS = 1.0  # exact digital silence this long: muted (a live microphone never is)
DARK_LUMA = BLACK_LUMA + 8
SAMPLE_STEP = 16  # every 16th pixel of every 16th row decides whether a picture is black


@dataclass(frozen=True)
class TileView:
    """One tile, as the display thread draws it."""

    key: str  # participant id, or SELF for the device's own picture
    name: str
    frame: VideoFrame | None  # None: draw `placeholder`
    sequence: int  # changes with every new frame: upload only then
    placeholder: str | None
    muted: bool


SELF = "self"


@dataclass
class _Tile:
    name: str
    connection: str = "new"
    frame: VideoFrame | None = None
    sequence: int = 0
    frame_at: float = 0.0
    dark: bool = False
    silent_since: float | None = None


class Tiles:
    """Written on the event loop, read by the display thread; `changed` wakes the latter."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tiles: dict[str, _Tile] = {}
        self._lock = threading.Lock()
        self.changed = threading.Event()

    def participants(self, participants: list[tuple[str, str, str]]) -> None:
        """The call's participants, in the order they joined: (id, name, connection); a
        screen one of them shares follows their own tile."""
        with self._lock:
            kept = {key: tile for key, tile in self._tiles.items() if key == SELF}
            for participant_id, name, connection in participants:
                tile = self._tiles.get(participant_id) or _Tile(name)
                tile.name, tile.connection = name, connection
                kept[participant_id] = tile
                screen = self._tiles.get(screen_of(participant_id))
                if screen is not None:
                    screen.name, screen.connection = _screen_name(name), connection
                    kept[screen_of(participant_id)] = screen
            self._tiles = kept
        self.changed.set()

    def show_self(self, name: str) -> None:
        with self._lock:
            self._tiles.setdefault(SELF, _Tile(name, connection="connected"))

    def video(self, key: str, frame: VideoFrame) -> None:
        luma = picture_plane(frame, 0)
        dark = int(luma[::SAMPLE_STEP, ::SAMPLE_STEP].max()) <= DARK_LUMA
        with self._lock:
            tile = self._tiles.get(key) or self._screen_tile(key)
            if tile is None:
                return  # gone from the call; its track is about to end
            tile.frame, tile.frame_at, tile.dark = frame, self._clock(), dark
            tile.sequence += 1
        self.changed.set()

    def audio(self, key: str, frame: AudioFrame) -> None:
        silent = not s16_samples(frame).any()
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                return
            if not silent:
                tile.silent_since = None
            elif tile.silent_since is None:
                tile.silent_since = self._clock()

    def forget(self, key: str) -> None:
        with self._lock:
            self._tiles.pop(key, None)
            self._tiles.pop(screen_of(key), None)
        self.changed.set()

    def _screen_tile(self, key: str) -> _Tile | None:
        """A participant's shared screen gets a tile with its first picture, next to
        theirs (the lock is held)."""
        sharer = sharer_of(key)
        if sharer is None or sharer not in self._tiles:
            return None
        owner = self._tiles[sharer]
        tile = _Tile(_screen_name(owner.name), connection=owner.connection)
        keys = list(self._tiles)
        keys.insert(keys.index(sharer) + 1, key)
        self._tiles[key] = tile
        self._tiles = {k: self._tiles[k] for k in keys}
        return tile

    def views(self) -> tuple[list[TileView], TileView | None]:
        """The remote participants' tiles, and the device's own picture if shown."""
        now = self._clock()
        with self._lock:
            views = [
                self._view(key, tile, now)
                for key, tile in self._tiles.items()
                if sharer_of(key) is None or now - tile.frame_at <= VIDEO_GONE_SECONDS
            ]  # a screen no longer shared leaves no tile
        remote = [view for view in views if view.key != SELF]
        own = next((view for view in views if view.key == SELF and view.frame), None)
        return remote, own

    @staticmethod
    def _view(key: str, tile: _Tile, now: float) -> TileView:
        placeholder = None
        if tile.connection != "connected":
            placeholder = "connecting…"
        elif tile.frame is None or tile.dark or now - tile.frame_at > VIDEO_GONE_SECONDS:
            placeholder = "camera off"
        muted = tile.silent_since is not None and now - tile.silent_since >= MUTED_SECONDS
        frame = tile.frame if placeholder is None else None
        return TileView(key, tile.name, frame, tile.sequence, placeholder, muted)


def _screen_name(name: str) -> str:
    return f"{name}'s screen"
