"""A worked example of vcalld's processor plugin interface (README, "Frame processors").

A processor factory is any callable with a `kind` ("audio" or "video") that takes the
options dict from the config and returns an object with `process(frame) -> frame`. An
optional `Options` pydantic model lets `vcalld check-config` reject bad options, naming the
key. `process` runs off the event loop, one frame at a time, so it may block for the length
of a frame and keep state between frames; raising takes it out of its chain.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from av import AudioFrame, VideoFrame
from av.frame import Frame
from pydantic import BaseModel, ConfigDict, Field


class Negative:
    """The picture's negative: every sample of every plane becomes 255 minus itself."""

    kind: ClassVar[str] = "video"

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def process(self, frame: Frame) -> Frame:
        assert isinstance(frame, VideoFrame)
        planes = frame.reformat(format="yuv420p").to_ndarray()  # (height * 3/2, width)
        negative = VideoFrame.from_ndarray((255 - planes).astype(np.uint8), format="yuv420p")
        negative.pts, negative.time_base = frame.pts, frame.time_base
        return negative


class FailAfterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frames: int = Field(default=50, ge=0)


class FailAfter:
    """Passes audio on untouched, then raises: how vcalld treats a processor with a bug."""

    kind: ClassVar[str] = "audio"
    Options: ClassVar[type[BaseModel]] = FailAfterOptions

    def __init__(self, options: dict[str, Any]) -> None:
        self._left = FailAfterOptions.model_validate(options).frames

    def process(self, frame: Frame) -> Frame:
        assert isinstance(frame, AudioFrame)
        if self._left == 0:
            raise RuntimeError("the example fails, as asked")
        self._left -= 1
        return frame
