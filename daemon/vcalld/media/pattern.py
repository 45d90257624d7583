"""The synthetic test picture, and the reader that recognises it after a lossy codec.

Layout (yuv420p): colour bars over the top 2/3, a band with a moving white box, and at the
bottom a machine-readable frame stamp (16 counter bits plus an 8-bit check) above the same
counter drawn as seven-segment digits for people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.uint8]

# BT.601 limited-range (Y, U, V) of white, yellow, cyan, green, magenta, red, blue, black.
BARS: tuple[tuple[int, int, int], ...] = (
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
)
STAMP_BITS = 24
_BAR_TOLERANCE = 40
_SEGMENTS = {  # a, b, c, d, e, f, g
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int

    @property
    def bars_bottom(self) -> int:
        return self.height * 2 // 3 // 2 * 2

    @property
    def stamp_top(self) -> int:
        return self.height * 5 // 6 // 2 * 2

    @property
    def digits_top(self) -> int:
        return (self.stamp_top + self.height) // 2 // 2 * 2

    def bar_span(self, index: int) -> tuple[int, int]:
        return index * self.width // len(BARS), (index + 1) * self.width // len(BARS)

    def cell_span(self, bit: int) -> tuple[int, int]:
        return bit * self.width // STAMP_BITS, (bit + 1) * self.width // STAMP_BITS


def stamp_bits(counter: int) -> list[bool]:
    value = counter & 0xFFFF
    check = ((value * 31) ^ 0xA5) & 0xFF
    word = value << 8 | check
    return [bool(word >> (STAMP_BITS - 1 - bit) & 1) for bit in range(STAMP_BITS)]


class PatternPainter:
    """Paints frames quickly: the static parts are drawn once, each frame copies and adds."""

    def __init__(self, width: int, height: int) -> None:
        self.geometry = Geometry(width, height)
        self._y = np.full((height, width), 16, np.uint8)
        self._u = np.full((height // 2, width // 2), 128, np.uint8)
        self._v = np.full((height // 2, width // 2), 128, np.uint8)
        for index, (y, u, v) in enumerate(BARS):
            left, right = self.geometry.bar_span(index)
            self._y[: self.geometry.bars_bottom, left:right] = y
            self._u[: self.geometry.bars_bottom // 2, left // 2 : right // 2] = u
            self._v[: self.geometry.bars_bottom // 2, left // 2 : right // 2] = v
        self._y[self.geometry.bars_bottom : self.geometry.stamp_top] = 60

    def paint(self, counter: int) -> Plane:
        """One frame as a (height * 3/2, width) yuv420p array."""
        g = self.geometry
        y = self._y.copy()
        band = g.stamp_top - g.bars_bottom
        size = max(2, band * 2 // 3)
        travel = max(1, g.width - size)
        left = (counter * 4) % (2 * travel)
        left = left if left < travel else 2 * travel - left
        top = g.bars_bottom + (band - size) // 2
        y[top : top + size, left : left + size] = 235
        for bit, on in enumerate(stamp_bits(counter)):
            cell_left, cell_right = g.cell_span(bit)
            y[g.stamp_top : g.digits_top, cell_left:cell_right] = 235 if on else 16
        self._paint_digits(y, f"{counter % 100000:05d}")
        # U then V, in rows of the luma's width (an odd chroma height fills half a row).
        chroma = np.concatenate([self._u.ravel(), self._v.ravel()]).reshape(-1, g.width)
        return np.concatenate([y, chroma])

    def _paint_digits(self, y: Plane, text: str) -> None:
        g = self.geometry
        height = g.height - g.digits_top - 4
        width = max(3, height // 2)
        stroke = max(1, height // 8)
        top = g.digits_top + 2
        for position, digit in enumerate(text):
            left = 4 + position * (width + stroke * 2)
            if left + width > g.width:
                return
            middle = top + height // 2
            boxes = {
                "a": (top, top + stroke, left, left + width),
                "b": (top, middle, left + width - stroke, left + width),
                "c": (middle, top + height, left + width - stroke, left + width),
                "d": (top + height - stroke, top + height, left, left + width),
                "e": (middle, top + height, left, left + stroke),
                "f": (top, middle, left, left + stroke),
                "g": (middle - stroke // 2, middle + stroke - stroke // 2, left, left + width),
            }
            for segment in _SEGMENTS[digit]:
                y0, y1, x0, x1 = boxes[segment]
                y[y0:y1, x0:x1] = 235


def read_stamp(luma: Plane) -> int | None:
    """The frame counter in a decoded picture's luma, or None if it is not our pattern."""
    height, width = luma.shape
    g = Geometry(width, height)
    row = (g.stamp_top + g.digits_top) // 2
    bits = []
    for bit in range(STAMP_BITS):
        left, right = g.cell_span(bit)
        bits.append(bool(luma[row, (left + right) // 2] > 125))
    word = 0
    for on in bits:
        word = word << 1 | on
    counter = word >> 8
    return counter if stamp_bits(counter) == bits else None


def bars_match(luma: Plane, u: Plane, v: Plane) -> bool:
    """True when every colour bar is where the pattern puts it, within codec tolerance."""
    height, width = luma.shape
    g = Geometry(width, height)
    row = g.bars_bottom // 2
    for index, expected in enumerate(BARS):
        left, right = g.bar_span(index)
        column = (left + right) // 2
        seen = (
            int(luma[row, column]),
            int(u[row // 2, column // 2]),
            int(v[row // 2, column // 2]),
        )
        if any(abs(a - b) > _BAR_TOLERANCE for a, b in zip(seen, expected, strict=True)):
            return False
    return True
