"""Frames' memory as arrays, viewed without a copy: interleaved s16, the one sample format of
the audio path (and PyAV's layout name for a channel count), and a picture's planes."""

from __future__ import annotations

from typing import Any

import numpy as np
from av import AudioFrame, VideoFrame


def layout_of(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def s16_samples(frame: AudioFrame) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A packed s16 frame's samples, one row per sample, viewed without a copy (PyAV's
    `to_ndarray` stacks the planes, which costs more than the rest of a frame's handling on
    a slow CPU)."""
    if frame.format.name != "s16":
        raise ValueError(f"expected packed s16 audio, got {frame.format.name}")
    channels = frame.layout.nb_channels
    plane = memoryview(frame.planes[0])
    samples = np.frombuffer(plane, np.int16, count=frame.samples * channels)
    shaped: np.ndarray[Any, np.dtype[np.int16]] = samples.reshape(frame.samples, channels)
    return shaped


def picture_plane(frame: VideoFrame, index: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Plane `index` of a planar picture (0 is luma), its rows cut to the picture's width
    (a decoder pads them to its alignment)."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]
