"""The playback mixer's FIFO rules: prefill, no clicks, and drift that never becomes latency."""

from __future__ import annotations

import numpy as np

from tests.soundcard import tone
from vcalld.media.mixer import Mixer

RATE = 48000
PERIOD = 960  # 20 ms


def mixer() -> Mixer:
    return Mixer(RATE, 1, prefill=2 * PERIOD, ceiling=10 * PERIOD)


def played(mixer: Mixer, periods: int) -> np.ndarray:
    return np.concatenate(
        [np.frombuffer(mixer.mix(PERIOD), np.int16) for _ in range(periods)]
    ).astype(np.float64)


def test_a_participant_plays_only_once_the_prefill_is_queued() -> None:
    mix = mixer()
    mix.push("a", tone(1000, RATE, 1, 0.02))
    assert not played(mix, 1).any()  # 20 ms queued, 40 ms needed
    mix.push("a", tone(1000, RATE, 1, 0.02))
    assert played(mix, 1).any()


def test_running_dry_fades_out_instead_of_clicking() -> None:
    mix = mixer()
    full_scale = np.full(int(2.5 * PERIOD), 20000, np.int16)  # DC: any step would show
    mix.push("a", full_scale)
    out = played(mix, 3)
    tail_start = int(2.5 * PERIOD)
    assert out[PERIOD] > 19000  # playing at full level...
    assert abs(out[tail_start - 1]) < 500  # ...faded to nothing by the last sample it had
    assert mix.snapshot()["a"]["underruns"] == 1
    assert np.all(np.abs(np.diff(out[:tail_start])) < 2000)  # no step anywhere


def test_a_fast_sender_is_cut_back_to_the_prefill() -> None:
    mix = mixer()
    for _ in range(30):  # the sender's clock runs ahead: 600 ms arrive, nothing is played
        mix.push("a", tone(1000, RATE, 1, 0.02))
    state = mix.snapshot()["a"]
    assert state["queued_ms"] <= 200  # the ceiling: latency stays bounded
    assert state["dropped_ms"] >= 400
