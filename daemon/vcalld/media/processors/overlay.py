"""An overlay: a line of text and/or the local time on a dark band, and a logo, in a corner.

Both are blended into yuv420p directly (luma at full resolution, chroma at half), so the
frame is never converted to RGB and back. Text is set again only when it changes: the clock
once a second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import av
import numpy as np
from av import VideoFrame
from av.frame import Frame
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vcalld.media.frames import timed_like
from vcalld.media.layout import picture_plane
from vcalld.media.text import text_mask

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
BAND_OPACITY = 0.55  # of the dark band behind the text
WHITE_LUMA, BLACK_LUMA, NEUTRAL_CHROMA = 235, 16, 128  # video range

Mask = np.ndarray[Any, Any]  # float32, 0-1


class OverlayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=200)
    clock: bool = Field(default=False, description="The local time, HH:MM:SS, after the text.")
    logo: Path | None = Field(default=None, description="An image file (PNG with alpha).")
    corner: Corner = "bottom-left"
    logo_corner: Corner = "top-right"
    height: float = Field(default=0.05, gt=0, le=0.5, description="Text height, of the frame's.")
    logo_height: float = Field(default=0.12, gt=0, le=1, description="Of the frame's height.")

    @model_validator(mode="after")
    def _shows_something(self) -> OverlayOptions:
        if not self.text and not self.clock and self.logo is None:
            raise ValueError("give text, clock or logo")
        return self


class _Picture:
    """Planes and per-pixel opacity to blend: luma at full size, chroma at half."""

    def __init__(
        self,
        luma: np.ndarray[Any, Any],
        alpha: Mask,
        cb: np.ndarray[Any, Any],
        cr: np.ndarray[Any, Any],
    ) -> None:
        self.luma, self.alpha = luma.astype(np.float32), alpha
        self.cb, self.cr = cb.astype(np.float32), cr.astype(np.float32)
        self.chroma_alpha = alpha[::2, ::2][: cb.shape[0], : cb.shape[1]]

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.alpha.shape
        return width, height


class Overlay:
    kind: ClassVar[str] = "video"
    Options: ClassVar[type[BaseModel]] = OverlayOptions

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = OverlayOptions.model_validate(options)
        self._logo_rgba = _read_image(self._options.logo) if self._options.logo else None
        self._text: tuple[str, int] | None = None
        self._text_picture: _Picture | None = None
        self._logo: tuple[int, _Picture] | None = None

    def process(self, frame: Frame) -> Frame:
        assert isinstance(frame, VideoFrame)
        picture = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        planes = [picture_plane(picture, index).copy() for index in range(3)]
        height = picture.height
        line = self._line()
        if line:
            _blend(planes, self._text_for(line, max(8, round(height * self._options.height))),
                   self._options.corner)  # fmt: skip
        if self._logo_rgba is not None:
            _blend(planes, self._logo_for(round(height * self._options.logo_height)),
                   self._options.logo_corner)  # fmt: skip
        luma, cb, cr = planes
        packed = np.concatenate([luma.reshape(-1), cb.reshape(-1), cr.reshape(-1)])
        out = VideoFrame.from_ndarray(packed.reshape(-1, picture.width), format="yuv420p")
        return timed_like(out, frame)

    def _line(self) -> str:
        clock = time.strftime("%H:%M:%S") if self._options.clock else ""
        return "  ".join(part for part in (self._options.text, clock) if part)

    def _text_for(self, line: str, height: int) -> _Picture:
        if self._text != (line, height) or self._text_picture is None:
            self._text = (line, height)
            self._text_picture = _band(text_mask(line, height))
        return self._text_picture

    def _logo_for(self, height: int) -> _Picture:
        if self._logo is None or self._logo[0] != height:
            assert self._logo_rgba is not None
            self._logo = (height, _rgba_picture(_scaled(self._logo_rgba, height)))
        return self._logo[1]


def _band(mask: np.ndarray[Any, Any]) -> _Picture:
    """White text on a translucent dark band with a margin of a quarter of its height."""
    margin = max(2, mask.shape[0] // 4) // 2 * 2
    coverage = np.pad(mask.astype(np.float32) / 255, margin)
    height, width = coverage.shape
    height, width = height + height % 2, width + width % 2
    coverage = np.pad(coverage, ((0, height - coverage.shape[0]), (0, width - coverage.shape[1])))
    # White text of coverage c over a black band of opacity o over the frame F:
    # c·W + (1-c)·o·B + (1-c)(1-o)·F, one layer of opacity 1-(1-c)(1-o).
    alpha = 1 - (1 - coverage) * (1 - BAND_OPACITY)
    luma = (WHITE_LUMA * coverage + BLACK_LUMA * BAND_OPACITY * (1 - coverage)) / alpha
    neutral = np.full((height // 2, width // 2), NEUTRAL_CHROMA)
    return _Picture(luma, alpha.astype(np.float32), neutral, neutral)


def _read_image(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        rgba: np.ndarray[Any, np.dtype[np.uint8]] = frame.to_ndarray(format="rgba")  # type: ignore[assignment]
    return rgba


def _scaled(rgba: np.ndarray[Any, Any], height: int) -> np.ndarray[Any, Any]:
    """`rgba` at `height` (even), nearest neighbour: a logo is scaled once."""
    height = max(2, height // 2 * 2)
    width = max(2, round(rgba.shape[1] * height / rgba.shape[0]) // 2 * 2)
    rows = np.arange(height) * rgba.shape[0] // height
    columns = np.arange(width) * rgba.shape[1] // width
    scaled: np.ndarray[Any, Any] = rgba[rows][:, columns]
    return scaled


def _rgba_picture(rgba: np.ndarray[Any, Any]) -> _Picture:
    """BT.601 video range, as the frames are."""
    red, green, blue = (rgba[..., index].astype(np.float32) for index in range(3))
    luma = 16 + 0.257 * red + 0.504 * green + 0.098 * blue
    cb = 128 - 0.148 * red - 0.291 * green + 0.439 * blue
    cr = 128 + 0.439 * red - 0.368 * green - 0.071 * blue
    alpha = rgba[..., 3].astype(np.float32) / 255
    return _Picture(luma, alpha, cb[::2, ::2], cr[::2, ::2])


def _blend(planes: list[np.ndarray[Any, Any]], picture: _Picture, corner: Corner) -> None:
    """Blend `picture` into the frame's planes in `corner`, a 2 % margin from the edges,
    cropped to the frame."""
    luma = planes[0]
    frame_height, frame_width = luma.shape
    margin = max(2, frame_height // 50) // 2 * 2
    width, height = picture.size
    width, height = min(width, frame_width - margin), min(height, frame_height - margin)
    left = margin if corner.endswith("left") else (frame_width - margin - width) // 2 * 2
    top = margin if corner.startswith("top") else (frame_height - margin - height) // 2 * 2
    _mix(luma[top : top + height, left : left + width], picture.luma, picture.alpha)
    for plane, values in ((planes[1], picture.cb), (planes[2], picture.cr)):
        region = plane[top // 2 : (top + height) // 2, left // 2 : (left + width) // 2]
        _mix(region, values, picture.chroma_alpha)


def _mix(region: np.ndarray[Any, Any], values: np.ndarray[Any, Any], alpha: Mask) -> None:
    rows, columns = region.shape
    opacity = alpha[:rows, :columns]
    mixed = region * (1 - opacity) + values[:rows, :columns] * opacity
    region[:] = np.rint(mixed).astype(np.uint8)
