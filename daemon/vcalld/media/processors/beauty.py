"""A beauty filter: skin smoothed, edges kept, by a guided filter on luma.

A guided filter (He, Sun and Tang) with the picture as its own guide flattens what varies
less than `smoothness` within `radius` (pores, noise) and leaves steeper edges (eyes, lips,
outlines) alone, at a cost independent of the radius (box sums). It is computed at the chroma
planes' half resolution, where the skin mask (Cb 77-127, Cr 133-173) is, and applied to full
resolution luma: the fast guided filter, a quarter of the work.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from av import VideoFrame
from av.frame import Frame
from pydantic import BaseModel, ConfigDict, Field

from vcalld.media.frames import timed_like
from vcalld.media.layout import picture_plane

SKIN_CB = (77, 127)
SKIN_CR = (133, 173)

Plane = np.ndarray[Any, Any]  # float32


class BeautyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strength: float = Field(default=0.8, ge=0, le=1, description="0 leaves the picture as is.")
    smoothness: float = Field(
        default=12.0, gt=0, le=64, description="Luma steps (of 255) to flatten; steeper is edge."
    )
    radius: int = Field(default=6, ge=2, le=32, description="Pixels, at full resolution.")
    skin_only: bool = Field(default=True, description="Smooth skin tones only.")


def box_mean(plane: Plane, radius: int) -> Plane:
    """The mean over a (2r+1)² square around each pixel, the edges repeated outward: running
    sums down the columns, then along the rows (a third of the cost of a 2D integral). In
    float32: means of squared luma at half of 720p err by under half a luma step²."""
    size = 2 * radius + 1
    padded = np.pad(plane, radius, mode="edge")
    down = np.cumsum(padded, axis=0, dtype=np.float32)
    rows = np.concatenate([down[size - 1 : size], down[size:] - down[:-size]])
    along = np.cumsum(rows, axis=1)
    window = np.concatenate([along[:, size - 1 : size], along[:, size:] - along[:, :-size]], 1)
    mean: Plane = (window / (size * size)).astype(np.float32)
    return mean


class BeautyFilter:
    kind: ClassVar[str] = "video"
    Options: ClassVar[type[BaseModel]] = BeautyOptions

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = BeautyOptions.model_validate(options)

    def process(self, frame: Frame) -> Frame:
        assert isinstance(frame, VideoFrame)
        options = self._options
        if not options.strength:
            return frame
        picture = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        luma = picture_plane(picture, 0).astype(np.float32)
        height, width = luma.shape
        small = (luma[0::2, 0::2] + luma[1::2, 0::2] + luma[0::2, 1::2] + luma[1::2, 1::2]) / 4
        a, b = self._coefficients(small, max(1, options.radius // 2))
        weight: Plane | np.float32 = np.float32(options.strength)
        if options.skin_only:
            weight = weight * _skin(picture_plane(picture, 1), picture_plane(picture, 2))
        a = 1 + (a - 1) * weight  # blend toward the unfiltered picture: a = 1, b = 0
        b = b * weight
        full_a, full_b = _upsampled(a, height, width), _upsampled(b, height, width)
        smoothed = np.clip(np.rint(full_a * luma + full_b), 0, 255).astype(np.uint8)
        planes = [smoothed, picture_plane(picture, 1), picture_plane(picture, 2)]
        return timed_like(VideoFrame.from_ndarray(_yuv420p(planes), format="yuv420p"), frame)

    def _coefficients(self, guide: Plane, radius: int) -> tuple[Plane, Plane]:
        """The guided filter's per-pixel linear model q = a·I + b, averaged over windows."""
        mean = box_mean(guide, radius)
        variance = box_mean(guide * guide, radius) - mean * mean
        a = variance / (variance + np.float32(self._options.smoothness**2))
        b = mean * (1 - a)
        return box_mean(a, radius), box_mean(b, radius)


def _skin(cb: np.ndarray[Any, Any], cr: np.ndarray[Any, Any]) -> Plane:
    """1 where the chroma is skin's, 0 elsewhere, softened over a few pixels."""
    inside = (
        (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]) & (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1])
    ).astype(np.float32)
    return box_mean(inside, 2)


def _upsampled(plane: Plane, height: int, width: int) -> Plane:
    doubled: Plane = np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)
    if doubled.shape != (height, width):  # an odd size: the last row or column repeated
        doubled = np.pad(
            doubled,
            ((0, height - doubled.shape[0]), (0, width - doubled.shape[1])),
            mode="edge",
        )
    return doubled


def _yuv420p(planes: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """The three planes as the single array PyAV's `from_ndarray` takes for yuv420p."""
    luma, cb, cr = planes
    height, width = luma.shape
    chroma = np.concatenate([cb.reshape(-1), cr.reshape(-1)])
    return np.concatenate([luma.reshape(-1), chroma]).reshape(height * 3 // 2, width)
