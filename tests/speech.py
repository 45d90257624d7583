"""Real speech for audio tests, spoken by espeak-ng: two voices that differ in pitch."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.resampler import AudioResampler

FAR_END = (
    "The meeting starts at nine. Please bring your badge to the front desk, "
    "and remember the budget review for the next quarter."
)
NEAR_END = "Hello, can you hear me? I am standing right next to the kiosk."


def speech(
    text: str, rate: int, voice: str = "en", pitch: int = 50
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """`text` spoken at `rate`, mono, scaled to a peak of 1.0."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True
        )
        resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        with av.open(str(path)) as container:
            parts = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    samples = np.concatenate(parts).astype(np.float64)
    peak: float = np.abs(samples).max()
    return samples / peak
