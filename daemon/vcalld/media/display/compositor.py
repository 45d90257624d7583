"""One screen of the call: every remote participant in a grid tile (picture letterboxed, or a
placeholder saying why there is none), a name label on each, the device's own picture in a
corner; drawn through a `Canvas`, so the rules here know nothing of SDL."""

from __future__ import annotations

from typing import Literal, Protocol

from vcalld.media.display.layout import Rect, grid, letterbox, self_view
from vcalld.media.display.tiles import TileView

PLACEHOLDER_GREY = 48
LABEL_BACKING_GREY = 0
MIN_TEXT_HEIGHT = 14

Anchor = Literal["centre", "bottom-left"]


class Canvas(Protocol):
    @property
    def size(self) -> tuple[int, int]:
        """Width and height to lay out for (rotation already applied)."""

    def clear(self) -> None: ...

    def fill(self, rect: Rect, grey: int) -> None: ...

    def picture(self, view: TileView, rect: Rect) -> None:
        """`view.frame`, scaled into `rect`."""

    def measure(self, text: str, height: int) -> tuple[int, int]:
        """The width and height `text` takes when written `height` pixels high."""

    def text(self, text: str, x: int, y: int, height: int, anchor: Anchor) -> None:
        """Writes `text` in white, `height` pixels high, its `anchor` at (x, y)."""


def compose(canvas: Canvas, remote: list[TileView], own: TileView | None, idle: str) -> list[Rect]:
    """Draws one screen; returns the tiles, in the order of `remote`. `idle` is said when no
    one else is there ("waiting for others to join")."""
    width, height = canvas.size
    canvas.clear()
    tiles = grid(len(remote), width, height)
    for view, tile in zip(remote, tiles, strict=True):
        shown = tile
        if view.frame is not None:
            shown = letterbox(view.frame.width, view.frame.height, tile)
            canvas.picture(view, shown)
        else:
            canvas.fill(tile, PLACEHOLDER_GREY)
            x, y = tile.centre
            canvas.text(view.placeholder or "", x, y, _text_height(tile), "centre")
        # On the picture, not in a letterbox bar beside it.
        _label(canvas, view.name + ("  (muted)" if view.muted else ""), shown)
    if not remote:
        canvas.text(idle, width // 2, height // 2, max(MIN_TEXT_HEIGHT, height // 20), "centre")
    if own is not None and own.frame is not None:
        corner = self_view(width, height, own.frame.width, own.frame.height)
        canvas.picture(own, corner)
        _label(canvas, own.name, corner)
    return tiles


def _text_height(tile: Rect) -> int:
    return max(MIN_TEXT_HEIGHT, tile.height // 16)


def _label(canvas: Canvas, text: str, tile: Rect) -> None:
    """Bottom left of the tile, on a dark backing that keeps it readable on any picture."""
    height = _text_height(tile)
    margin = height // 2
    text_width, text_height = canvas.measure(text, height)
    x, bottom = tile.x + margin, tile.y + tile.height - margin
    pad = margin // 2
    backing = Rect(x - pad, bottom - text_height, text_width + 2 * pad, text_height)
    canvas.fill(backing, LABEL_BACKING_GREY)
    canvas.text(text, x, bottom, height, "bottom-left")
