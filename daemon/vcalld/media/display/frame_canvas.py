"""The compositor's `Canvas` in memory, an RGB picture drawn by numpy and swscale: the screen
of the call as a frame, for the composite recording (no display, no GPU needed)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from av import VideoFrame

from vcalld.media.display.compositor import Anchor
from vcalld.media.display.layout import Rect
from vcalld.media.display.tiles import TileView
from vcalld.media.text import text_mask

TEXTS_KEPT = 64  # names, placeholders: the same few texts screen after screen

Pixels = np.ndarray[Any, np.dtype[np.uint8]]


class FrameCanvas:
    def __init__(self, width: int, height: int) -> None:
        self.pixels: Pixels = np.zeros((height, width, 3), np.uint8)
        self._texts: OrderedDict[tuple[str, int], Pixels] = OrderedDict()

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.pixels.shape[:2]
        return width, height

    def clear(self) -> None:
        self.pixels[:] = 0

    def fill(self, rect: Rect, grey: int) -> None:
        self._region(rect)[:] = grey

    def picture(self, view: TileView, rect: Rect) -> None:
        assert view.frame is not None
        if rect.width < 2 or rect.height < 2:
            return
        scaled = view.frame.reformat(rect.width, rect.height, "rgb24").to_ndarray()
        region = self._region(rect)
        region[:] = scaled[: region.shape[0], : region.shape[1]]

    def measure(self, text: str, height: int) -> tuple[int, int]:
        mask = self._mask(text, height)
        return mask.shape[1], mask.shape[0]

    def text(self, text: str, x: int, y: int, height: int, anchor: Anchor) -> None:
        mask = self._mask(text, height)
        mask_height, mask_width = mask.shape
        if anchor == "centre":
            x, y = x - mask_width // 2, y - mask_height // 2
        else:
            y -= mask_height
        region = self._region(Rect(x, y, mask_width, mask_height))
        # The part of the text that is on the canvas: a region clipped at the top or left
        # starts further into the mask.
        top, left = max(0, -y), max(0, -x)
        alpha = mask[top : top + region.shape[0], left : left + region.shape[1], None] / 255.0
        region[:] = (region + (255 - region) * alpha).astype(np.uint8)

    def frame(self) -> VideoFrame:
        """What was drawn, as a frame to encode."""
        return VideoFrame.from_ndarray(self.pixels, format="rgb24")

    def _region(self, rect: Rect) -> Pixels:
        """The canvas's pixels under `rect`, clipped to the canvas."""
        width, height = self.size
        x0, y0 = max(0, rect.x), max(0, rect.y)
        x1, y1 = min(width, rect.x + rect.width), min(height, rect.y + rect.height)
        return self.pixels[y0 : max(y0, y1), x0 : max(x0, x1)]

    def _mask(self, text: str, height: int) -> Pixels:
        key = (text, height)
        mask = self._texts.get(key)
        if mask is None:
            mask = self._texts[key] = text_mask(text, height)
            if len(self._texts) > TEXTS_KEPT:
                self._texts.popitem(last=False)
        self._texts.move_to_end(key)
        return mask
