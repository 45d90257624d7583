"""One timeline for the outgoing video across a change of source (camera to screen and
back): each source keeps its own clock, shifted so that its first frame follows the last one
sent by the time that passed, so RTP timestamps never jump back or leap ahead."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

from vcalld.media.sources.base import Media

VIDEO_CLOCK = 90000  # RTP's for video
MediaT = TypeVar("MediaT", bound=Media)


class VideoTimeline:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._source: str | None = None
        self._offset = 0
        self._last: tuple[int, float] | None = None  # (pts sent, when)

    def new_segment(self) -> None:
        """The next frame starts afresh (its source was stopped and started again), placed
        after the last one sent by the time that passed, like a change of source."""
        self._source = None

    def stamp(self, source: str, frame: MediaT) -> MediaT:
        """`frame` from `source`, its pts on the shared timeline (in 1/90000 s)."""
        now = self._clock()
        own = _ticks(frame)
        if source != self._source:
            self._source = source
            if self._last is not None:
                last_pts, sent_at = self._last
                self._offset = last_pts + max(1, round((now - sent_at) * VIDEO_CLOCK)) - own
        frame.pts, frame.time_base = own + self._offset, Fraction(1, VIDEO_CLOCK)
        self._last = (frame.pts, now)
        return frame


def _ticks(frame: Media) -> int:
    """The frame's pts in 1/90000 s, in integers (Fraction arithmetic costs, per frame)."""
    if frame.pts is None or frame.time_base is None:
        return 0
    scaled = frame.pts * frame.time_base.numerator * VIDEO_CLOCK
    return (2 * scaled + frame.time_base.denominator) // (2 * frame.time_base.denominator)
