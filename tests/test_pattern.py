"""The test pattern every call test recognises, at the sizes calls use."""

from __future__ import annotations

import pytest
from av import VideoFrame

from vcalld.media.layout import picture_plane
from vcalld.media.pattern import PatternPainter, bars_match, read_stamp


@pytest.mark.parametrize("size", [(640, 480), (320, 180), (160, 90), (1280, 720)])
def test_pattern_frames_carry_their_stamp_and_bars(size: tuple[int, int]) -> None:
    """160x90 has an odd chroma height (45 rows), which the painter once could not lay out."""
    width, height = size
    painter = PatternPainter(width, height)
    for counter in (0, 7, 12345):
        frame = VideoFrame.from_ndarray(painter.paint(counter), format="yuv420p")
        assert (frame.width, frame.height) == size
        luma = picture_plane(frame, 0)
        assert read_stamp(luma) == counter
        assert bars_match(luma, picture_plane(frame, 1), picture_plane(frame, 2))
