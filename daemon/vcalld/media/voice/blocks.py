"""Audio in periods of any size, rate and layout, out in whole 10 ms blocks of one format:
the unit WebRTC's audio processing works in."""

from __future__ import annotations

from typing import Any

import numpy as np
from av import AudioFrame
from av.audio.resampler import AudioResampler

from vcalld.media.layout import layout_of, s16_samples

Samples = np.ndarray[Any, np.dtype[np.int16]]


class Reblocker:
    def __init__(self, rate_in: int, channels_in: int, rate_out: int, channels_out: int) -> None:
        self._rate_in, self._layout_in = rate_in, layout_of(channels_in)
        self._resampler = (
            AudioResampler(format="s16", layout=layout_of(channels_out), rate=rate_out)
            if (rate_in, channels_in) != (rate_out, channels_out)
            else None
        )
        self._block = rate_out // 100 * channels_out
        self._pending: Samples = np.empty(0, np.int16)

    def push(self, interleaved: Samples) -> Samples:
        """The whole blocks now available (possibly none); the rest waits for the next push."""
        if self._resampler is not None:
            frame = AudioFrame.from_ndarray(
                interleaved.reshape(1, -1), format="s16", layout=self._layout_in
            )
            frame.sample_rate = self._rate_in
            converted = [s16_samples(out).reshape(-1) for out in self._resampler.resample(frame)]
            interleaved = np.concatenate(converted) if converted else interleaved[:0]
        pending = interleaved
        if len(self._pending):  # periods of whole blocks (20 ms is two) never leave a rest
            pending = np.concatenate([self._pending, interleaved])
        whole = len(pending) - len(pending) % self._block
        self._pending = pending[whole:]
        return pending[:whole]
