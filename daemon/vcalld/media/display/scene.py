"""What the daemon and its screen process say to each other, one message per screen: the
tiles to draw (a picture only when it is new to that process, in the shared arena) and, back,
where they went."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from av import VideoFrame

from vcalld.media.display.arena import ArenaReader, Picture, PictureArena
from vcalld.media.display.layout import Rect
from vcalld.media.display.tiles import TileView


@dataclass(frozen=True)
class SceneTile:
    """A `TileView` without its frame: `picture` is sent once per new one, `has_picture` says
    whether the tile shows the last one sent."""

    key: str
    name: str
    sequence: int
    has_picture: bool
    picture: Picture | None
    placeholder: str | None
    muted: bool


@dataclass(frozen=True)
class Scene:
    remote: list[SceneTile]
    own: SceneTile | None
    idle: str
    capture: bool  # answer with the screen as shown
    arena_size: int  # bytes of the arena the pictures are in


@dataclass(frozen=True)
class Opened:
    """The screen process is drawing on this display."""

    output: tuple[int, int]
    refresh_hz: int
    vsync: bool
    renderer_name: str


@dataclass(frozen=True)
class Failed:
    """The display cannot be opened, or was lost; the screen process ends after saying so."""

    reason: str


@dataclass(frozen=True)
class Shown:
    tiles: list[Rect]  # where each remote tile went, before rotation
    pixels: np.ndarray | None  # with `Scene.capture`: height x width x RGB


class SceneSender:
    """The daemon's side: turns views into scene tiles, each picture sent only once."""

    def __init__(self, arena: PictureArena) -> None:
        self._arena = arena
        self._sent: dict[str, int] = {}  # key: sequence of the picture the process holds

    def tile(self, view: TileView) -> SceneTile:
        picture = None
        if view.frame is not None and self._sent.get(view.key) != view.sequence:
            picture = self._arena.put(view.frame)
            self._sent[view.key] = view.sequence
        return SceneTile(
            view.key, view.name, view.sequence, view.frame is not None, picture,
            view.placeholder, view.muted,
        )  # fmt: skip

    def scene(
        self, remote: list[TileView], own: TileView | None, idle: str, capture: bool
    ) -> Scene:
        keys = {view.key for view in remote} | ({own.key} if own else set())
        for gone in self._sent.keys() - keys:
            del self._sent[gone]
        self._arena.begin_scene()
        tiles = [self.tile(view) for view in remote]
        own_tile = self.tile(own) if own else None
        return Scene(tiles, own_tile, idle, capture, self._arena.size)


class SceneReceiver:
    """The screen process's side: scene tiles back into views, with the pictures it holds."""

    def __init__(self, arena: ArenaReader) -> None:
        self._arena = arena
        self._frames: dict[str, VideoFrame] = {}

    def view(self, tile: SceneTile, arena_size: int) -> TileView:
        if tile.picture is not None:
            self._frames[tile.key] = self._arena.frame(tile.picture, arena_size)
        frame = self._frames.get(tile.key) if tile.has_picture else None
        return TileView(tile.key, tile.name, frame, tile.sequence, tile.placeholder, tile.muted)

    def views(self, scene: Scene) -> tuple[list[TileView], TileView | None, set[str]]:
        """The views, and the keys of tiles no longer shown (whose textures can go)."""
        remote = [self.view(tile, scene.arena_size) for tile in scene.remote]
        own = self.view(scene.own, scene.arena_size) if scene.own else None
        keys = {view.key for view in remote} | ({own.key} if own else set())
        gone = self._frames.keys() - keys
        for key in gone:
            del self._frames[key]
        return remote, own, gone
