"""The stats renderer's audio analysis: pitch and level of what arrived, gaps included."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from av import AudioFrame

from tests.soundcard import tone
from vcalld.media.sinks.stats import AudioStats

RATE = 48000
FRAME_SAMPLES = 960
TONE_HZ = 660.0
TONE = tone(TONE_HZ, RATE, 1, seconds=2.0)  # 100 frames: every test stays within it


def tone_frame(index: int, pts: int | None) -> AudioFrame:
    """Frame `index` of a continuous 660 Hz tone, stamped with `pts`."""
    start = index * FRAME_SAMPLES
    wave = TONE[start : start + FRAME_SAMPLES].reshape(1, -1)
    frame = AudioFrame.from_ndarray(wave, format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = Fraction(1, RATE)
    return frame


def test_lost_frames_leave_gaps_instead_of_raising_the_pitch() -> None:
    stats = AudioStats()
    for index in range(60):
        if index % 4 != 3:  # every fourth frame lost
            stats.add(tone_frame(index, index * FRAME_SAMPLES))
    snapshot = stats.snapshot()
    # Spliced together, the same frames read as 664 Hz (the analysis bins are 2 Hz wide).
    assert snapshot["frequency_hz"] == TONE_HZ
    assert snapshot["coverage"] == pytest.approx(0.75, abs=0.05)
    assert snapshot["level_dbfs"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)


def test_rtp_timestamp_wrap_keeps_the_timeline() -> None:
    stats = AudioStats()
    origin = (1 << 32) - 10 * FRAME_SAMPLES
    for index in range(40):
        stats.add(tone_frame(index, (origin + index * FRAME_SAMPLES) % (1 << 32)))
    snapshot = stats.snapshot()
    assert snapshot["frequency_hz"] == TONE_HZ
    assert snapshot["coverage"] == 1.0


def test_frames_without_timestamps_follow_each_other() -> None:
    stats = AudioStats()
    for index in range(40):
        stats.add(tone_frame(index, None))
    snapshot = stats.snapshot()
    assert snapshot["frequency_hz"] == TONE_HZ
    assert snapshot["coverage"] == 1.0
    assert snapshot["samples"] == 40 * FRAME_SAMPLES
