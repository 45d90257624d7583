"""Frames made rather than captured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from av import AudioFrame, VideoFrame
from av.frame import Frame

FrameT = TypeVar("FrameT", bound=Frame)
BLACK_LUMA, NEUTRAL_CHROMA = 16, 128  # video range


def black_video(width: int, height: int) -> VideoFrame:
    """Black yuv420p: what a muted or missing camera sends, so peers keep their decoders."""
    luma = np.full((height, width), BLACK_LUMA, np.uint8)
    chroma = np.full((height // 2, width), NEUTRAL_CHROMA, np.uint8)
    return VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")


def silent_audio(samples: int, layout: str, rate: int) -> AudioFrame:
    """`samples` of packed s16 silence: what a muted microphone sends, or a gap filled."""
    channels = 1 if layout == "mono" else 2
    zeros = np.zeros((1, samples * channels), np.int16)
    silent = AudioFrame.from_ndarray(zeros, format="s16", layout=layout)
    silent.sample_rate = rate
    return silent


def timed_like(made: FrameT, original: Frame) -> FrameT:
    """`made` (a frame computed from `original`) with the original's timing and, for audio,
    rate, so it takes its place in the stream."""
    if isinstance(made, AudioFrame) and isinstance(original, AudioFrame):
        made.sample_rate = original.sample_rate
    made.pts = original.pts
    if original.time_base is not None:
        made.time_base = original.time_base
    return made


def black_while_away(
    stopping: threading.Event,
    seconds: float,
    fps: int,
    size: tuple[int, int],
    deliver: Callable[[VideoFrame], None],
) -> None:
    """Black frames at `fps` for `seconds` (or until `stopping`): what a video source sends
    while its device or display is away, so the far end sees it off rather than frozen."""
    deadline = time.monotonic() + seconds
    while not stopping.wait(min(1 / fps, max(0.0, deadline - time.monotonic()))):
        deliver(black_video(*size))
        if time.monotonic() >= deadline:
            return
