"""Voice processing of the microphone, through the real WebRTC audio processing library:
echo cancellation against what the speaker played (offline at every capture format, and in
real time through libasound with the test's "room" between speaker and microphone), and each
stage switched on and off."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tests.echo import (
    DOUBLE_TALK,
    FAR_GAIN,
    NEAR_GAIN,
    Heard,
    Signal,
    measure,
    stereo,
    talk_in_room,
)
from tests.soundcard import PipeSoundCard, Room
from tests.speech import FAR_END, NEAR_END, speech
from vcalld.config import VcalldConfig
from vcalld.config.models import VoiceConfig
from vcalld.daemon import Daemon
from vcalld.media.voice.processor import EchoReference, VoiceProcessor

ROOM = Room(delay=0.06, gain=0.4)  # a device with some output latency, a loud speaker
ECHO_ONLY = VoiceConfig(noise_suppression=False, gain_control=False, high_pass_filter=False)
NOTHING = VoiceConfig(
    echo_cancellation=False, noise_suppression=False, gain_control=False, high_pass_filter=False
)


@pytest.fixture(scope="module")
def far_speech() -> Iterator[dict[int, Signal]]:
    """The far end's sentence at each rate, from one recording."""
    yield {rate: FAR_GAIN * speech(FAR_END, rate) for rate in (16000, 32000, 44100, 48000)}


@pytest.fixture(scope="module")
def near_speech() -> Iterator[dict[int, Signal]]:
    yield {
        rate: NEAR_GAIN * speech(NEAR_END, rate, "en+f3", 70)
        for rate in (16000, 32000, 44100, 48000)
    }


@pytest.mark.parametrize(
    ("rate", "channels"), [(16000, 1), (32000, 2), (44100, 1), (48000, 1), (48000, 2)]
)
@pytest.mark.parametrize("cancels", [True, False], ids=["aec-on", "aec-off"])
def test_echo_of_the_speaker_is_cancelled_and_the_talker_kept(
    far_speech: dict[int, Signal],
    near_speech: dict[int, Signal],
    rate: int,
    channels: int,
    cancels: bool,
) -> None:
    """Offline, period by period as the device threads would: the speaker (48 kHz stereo)
    plays the far end; the microphone at `rate` hears it 60 ms later, plus a local talker."""
    config = ECHO_ONLY if cancels else NOTHING
    processor = VoiceProcessor(config, rate, channels, echo_reference=True)
    reference = processor.echo_reference(48000, 2)
    assert (reference is not None) == cancels
    far, near = far_speech[rate], near_speech[rate]
    near_at = len(far) - int(DOUBLE_TALK * rate)
    total = near_at + len(near) + rate // 2
    echo, talker = np.zeros(total), np.zeros(total)
    delay = ROOM.delay_frames(rate)
    echo[delay : delay + len(far)] = ROOM.gain * far[: total - delay]
    talker[near_at : near_at + len(near)] = near
    mic = np.repeat(((echo + talker) * 32767).astype(np.int16), channels)
    played = stereo(far_speech[48000])
    out = []
    for index in range(total // (rate // 50)):
        if reference is not None:
            speaker_period = played[index * 1920 : (index + 1) * 1920]
            reference.played(np.pad(speaker_period, (0, 1920 - len(speaker_period))), 0)
        period = mic[index * (rate // 50) * channels : (index + 1) * (rate // 50) * channels]
        out.append(processor.process(period, rate // 50))
    processed = np.concatenate(out).reshape(-1, channels) / 32768.0
    assert processor.rate == (48000 if rate == 44100 else rate)
    for channel in range(channels):
        result = measure(Heard(echo, talker, rate), processed[:, channel], processor.rate)
        if cancels:
            assert result.erle_db >= 20, result
        else:
            assert abs(result.erle_db) < 1, result  # the echo passes untouched
        assert result.near_correlation > 0.9, result
        assert abs(result.near_gain_db) < 3, result


def noise(seconds: float, rate: int, level: float) -> Signal:
    return np.random.default_rng(7).normal(0, level, int(seconds * rate))


def sine(frequency: float, seconds: float, rate: int, amplitude: float) -> Signal:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def quiet_speech(seconds: float, rate: int) -> Signal:
    talk = 0.03 * speech(NEAR_END, rate)
    return np.tile(talk, int(np.ceil(seconds * rate / len(talk))))[: int(seconds * rate)]


def processed(config: VoiceConfig, signal: Signal, rate: int = 48000) -> Signal:
    processor = VoiceProcessor(config, rate, 1, echo_reference=False)
    samples = (signal * 32767).astype(np.int16)
    period = rate // 50
    starts = range(0, len(samples), period)
    out = [processor.process(samples[start : start + period], period) for start in starts]
    return np.concatenate(out) / 32768.0


def level_db(signal: Signal) -> float:
    return float(10 * np.log10(np.mean(signal**2) + 1e-12))


@pytest.mark.parametrize(
    ("stage", "signal", "effect_db"),
    [
        # Steady hiss (no speech) is what noise suppression takes out.
        ("noise_suppression", noise(4, 48000, 0.01), -10),
        # A quiet talker (-30 dBFS peaks) is brought up towards a speech level.
        ("gain_control", quiet_speech(8, 48000), +6),
        # Rumble at 30 Hz is below the 80 Hz high-pass.
        ("high_pass_filter", sine(30, 4, 48000, 0.3), -10),
    ],
)
@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_each_stage_does_its_work_only_when_switched_on(
    stage: str, signal: Signal, effect_db: float, enabled: bool
) -> None:
    out = processed(NOTHING.model_copy(update={stage: enabled}), signal)
    settled = slice(-48000 * 2, None)  # the adaptive stages have had time to adapt
    change = level_db(out[settled]) - level_db(signal[settled])
    if not enabled:
        assert abs(change) < 0.5, change
    elif effect_db < 0:
        assert change <= effect_db, change
    else:
        assert change >= effect_db, change


def test_a_speaker_clock_ahead_of_the_microphones_never_delays_the_echo_reference() -> None:
    """Two devices, two crystals: the speaker plays 2 % more than the microphone captures,
    30 s of it (600 ms apart by the end). What the microphone is given as the echo reference
    is never more than 100 ms behind what the speaker plays (the oldest is dropped), so the
    echo path the canceller must model cannot grow over a long call."""
    reference = EchoReference(48000, 2, 16000)
    speaker_periods, behind_seconds = 0, []
    for microphone_period in range(1500):
        for _ in range(2 if microphone_period % 50 == 49 else 1):
            speaker_periods += 1  # each speaker period is marked with its number
            reference.played(np.full(2 * 960, speaker_periods, np.int16), 0)
        heard = reference.take(320)
        behind_seconds.append((speaker_periods - int(np.median(heard))) * 0.02)
    assert max(behind_seconds) <= 0.12, max(behind_seconds)
    assert reference.dropped >= 0.4 * 16000  # the rest of the 600 ms went


async def test_echo_through_real_devices_is_cancelled_in_real_time(
    card: PipeSoundCard,
    far_speech: dict[int, Signal],
    near_speech: dict[int, Signal],
) -> None:
    """The daemon's speaker and microphone on libasound, the test's room in between: the
    speaker's thread feeds the reference while the microphone's thread cancels, with the
    delay the devices and the room really add."""
    far, near = far_speech[48000], near_speech[48000]
    result, processor = await talk_in_room(card, ECHO_ONLY, ROOM, far, near)
    assert result.erle_db >= 20, result
    assert result.near_correlation > 0.9, result
    assert abs(result.near_gain_db) < 3, result
    metrics = processor.echo_metrics()
    assert metrics is not None and 0 <= metrics["delay_median_ms"] <= 200, metrics


@pytest.mark.parametrize(
    ("audio", "speaker", "voice", "expected"),
    [
        ("alsa", True, {}, "cancels echo"),
        ("alsa", False, {}, "processes"),  # nothing played, nothing to cancel
        ("alsa", True, {"echo_cancellation": False}, "processes"),
        ("alsa", True, dict.fromkeys(VoiceConfig.model_fields, False), None),
        ("tone", True, {}, None),  # not a microphone
    ],
)
def test_the_daemon_processes_a_microphone_and_cancels_echo_when_it_plays(
    daemon_config: Callable[..., VcalldConfig],
    audio: str,
    speaker: bool,
    voice: dict[str, bool],
    expected: str | None,
) -> None:
    config = daemon_config(
        None, "dev-a", audio={"source": audio}, speaker={"enabled": speaker}, voice=voice
    )
    daemon = Daemon(config)
    if expected is None:
        assert daemon.voice is None
        return
    assert daemon.voice is not None
    assert daemon.voice.cancels_echo == (expected == "cancels echo")
