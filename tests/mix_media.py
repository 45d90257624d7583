"""Audio files of known tones for the audio mix, and the levels of tones in what arrives."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame"}
AMPLITUDE = 0.3  # the daemon's tone source has the same


def write_tones(
    path: Path,
    tones: Sequence[tuple[float, float]],
    *,
    rate: int = 44100,
    channels: int = 2,
    amplitude: float = AMPLITUDE,
) -> Path:
    """A file of `tones` (frequency Hz, seconds) one after another, coded by its suffix."""
    waves = []
    for frequency, seconds in tones:
        t = np.arange(int(rate * seconds)) / rate
        waves.append(amplitude * np.sin(2 * np.pi * frequency * t))
    return write_samples(path, np.concatenate(waves), rate, channels)


def write_samples(path: Path, signal: np.ndarray[Any, Any], rate: int, channels: int = 1) -> Path:
    """`signal` (mono, [-1, 1]) on every channel of a file coded by its suffix."""
    samples = np.repeat((signal * 32767).astype(np.int16), channels)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(CODECS[path.suffix], rate=rate, layout=layout)
        chunk = 1024 * channels
        for index, start in enumerate(range(0, len(samples), chunk)):
            part = samples[start : start + chunk].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, index * 1024
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def tone_levels(
    signal: np.ndarray[Any, Any], rate: int, frequencies: Sequence[float]
) -> dict[float, float]:
    """Each frequency's sine component of `signal` (mono, [-1, 1]), as the dBFS RMS level that
    sine alone would have: from the energy of its Hann-windowed spectral lobe."""
    window = np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(signal * window)) ** 2
    bin_hz = rate / len(signal)
    levels = {}
    for frequency in frequencies:
        centre = round(frequency / bin_hz)
        energy = float(spectrum[max(centre - 3, 0) : centre + 4].sum())
        amplitude = np.sqrt(4 * energy / (len(signal) ** 2 * np.mean(window**2)))
        levels[frequency] = round(20 * float(np.log10(max(amplitude / np.sqrt(2), 1e-6))), 1)
    return levels
