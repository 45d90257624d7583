"""Microphone and speaker through real libasound (its `file` PCMs on pipes, see soundcard.py):
content, rate and channel count for every supported combination, the mix of several
participants, and a missing microphone that is reported and comes back."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from av import AudioFrame
from av.frame import Frame

from tests.helpers import BIN, eventually, received, running
from tests.soundcard import PcmTrack, PipeSoundCard, playing, tone
from vcalld.commands import SetVolumeCommand
from vcalld.config import AudioConfig, VcalldConfig
from vcalld.config.models import SpeakerConfig
from vcalld.media.alsa.runaway import RunawayCheck, RunawayDeviceError
from vcalld.media.sinks.speaker import Speaker
from vcalld.media.sinks.stats import AudioStats, dominant_frequency, level_dbfs
from vcalld.media.sources.alsa import AlsaSource
from vcalld.room.server import RoomServer

RATES = [16000, 32000, 44100, 48000]
CHANNELS = [1, 2]
TONE_LEVEL_DBFS = round(20 * np.log10(0.3 / np.sqrt(2)), 1)  # a sine at 0.3 of full scale


@pytest.fixture
def plugged(card: PipeSoundCard) -> Iterator[PipeSoundCard]:
    card.plug("mic")
    card.plug("speaker")
    yield card
    card.close()


def analyse(interleaved: np.ndarray, rate: int, channels: int) -> list[tuple[float, float]]:
    """(frequency, level) of each channel over the last half second."""
    frames = interleaved.reshape(-1, channels)[-rate // 2 :] / 32768.0
    return [
        (dominant_frequency(frames[:, c], rate), level_dbfs(frames[:, c])) for c in range(channels)
    ]


def add_audio(stats: AudioStats, frame: Frame) -> None:
    assert isinstance(frame, AudioFrame)
    stats.add(frame)


def tone_track(frequency: float, amplitude: float = 0.3) -> PcmTrack:
    return PcmTrack(tone(frequency, 48000, 2, 1.0, amplitude), loop=True)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("rate", RATES)
async def test_microphone_frames_carry_the_signal_at_the_configured_format(
    plugged: PipeSoundCard, rate: int, channels: int
) -> None:
    config = {"source": "alsa", "device": plugged.MIC, "sample_rate": rate, "channels": channels}
    source = AlsaSource(AudioConfig.model_validate(config))
    stats, problems, layouts = AudioStats(), list[str | None](), set[str]()

    def publish(frame: Frame) -> None:
        assert isinstance(frame, AudioFrame)
        layouts.add(frame.layout.name)
        stats.add(frame)

    with plugged.feeding(tone(1000, rate, channels, 1.0), rate, channels):
        task = asyncio.create_task(source.run(publish, problems.append))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    snapshot = stats.snapshot()
    assert snapshot["sample_rate"] == rate
    assert layouts == {"mono" if channels == 1 else "stereo"}
    assert snapshot["frequency_hz"] == pytest.approx(1000, abs=2)
    assert snapshot["level_dbfs"] == pytest.approx(TONE_LEVEL_DBFS, abs=1)
    assert snapshot["coverage"] == 1.0  # frames follow each other without gaps
    assert problems == [None]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("rate", RATES)
async def test_speaker_plays_a_participant_at_the_device_format(
    plugged: PipeSoundCard, rate: int, channels: int
) -> None:
    config = {"enabled": True, "device": plugged.SPEAKER, "sample_rate": rate, "channels": channels}
    speaker = Speaker(SpeakerConfig.model_validate(config), lambda problem: None)
    async with playing(speaker, {"alice": tone_track(660)}):
        played = await asyncio.to_thread(plugged.record, rate, channels, 1.2)
    for frequency, level in analyse(played, rate, channels):
        assert frequency == pytest.approx(660, abs=2)
        assert level == pytest.approx(TONE_LEVEL_DBFS, abs=1.5)


async def test_speaker_mixes_participants_and_never_clips(plugged: PipeSoundCard) -> None:
    speaker = Speaker(SpeakerConfig(enabled=True, device=plugged.SPEAKER), lambda problem: None)
    loud = {"alice": tone_track(440, amplitude=0.9), "bob": tone_track(1000, amplitude=0.9)}
    async with playing(speaker, loud):
        played = await asyncio.to_thread(plugged.record, 48000, 2, 1.5)
        mixed = speaker.snapshot()
    left = played.reshape(-1, 2)[-24000:, 0] / 32768.0
    spectrum = np.abs(np.fft.rfft(left * np.hanning(len(left))))
    bins = {frequency: spectrum[int(frequency / 2)] for frequency in (440, 1000)}
    assert min(bins.values()) > 0.5 * spectrum.max(), bins  # both voices, equally loud
    assert np.abs(played).max() <= 0.98 * 32767 + 1  # the limiter held the 1.8x sum
    assert set(mixed) == {"alice", "bob"}
    assert all(entry["level_dbfs"] > -10 for entry in mixed.values()), mixed


DRIFT_SECONDS = 15.0


@pytest.mark.parametrize("speed", [0.98, 1.02])
async def test_clock_drift_between_sender_and_speaker_never_becomes_latency(
    plugged: PipeSoundCard, speed: float
) -> None:
    """The speaker's clock runs 2 % slow or fast against the sender's: 300 ms of drift in 15 s,
    what 100 ppm add up to in 50 minutes. The participant's queue, the only place it could
    pile up, stays within its bounds: cut back from 200 ms to 40 ms when the speaker is slow,
    refilled to 40 ms after running dry when it is fast; the tone plays on."""
    speaker = Speaker(SpeakerConfig(enabled=True, device=plugged.SPEAKER), lambda problem: None)
    queued_ms: list[float] = []
    async with playing(speaker, {"alice": tone_track(660)}):
        recording = asyncio.ensure_future(
            asyncio.to_thread(plugged.record, 48000, 2, DRIFT_SECONDS, speed=speed)
        )
        while not recording.done():
            queued_ms.append(speaker.snapshot().get("alice", {}).get("queued_ms", 0.0))
            await asyncio.sleep(0.05)
        played = await recording
        alice = speaker.snapshot()["alice"]
    drift_ms = 1000 * DRIFT_SECONDS * abs(1 - speed)
    if speed < 1:
        assert max(queued_ms) <= 200, max(queued_ms)
        assert alice["dropped_ms"] >= drift_ms - 200, alice  # cut back, not kept as delay
    else:
        assert max(queued_ms) <= 80, max(queued_ms)  # the prefill and a frame or two of jitter
        assert alice["underruns"] >= drift_ms // 60, alice  # ran dry and refilled, again and again
    [(frequency, _), _] = analyse(played, 48000, 2)
    assert frequency == pytest.approx(660, abs=2)


async def test_missing_microphone_sends_silence_says_why_and_recovers(
    card: PipeSoundCard,
) -> None:
    card.unplug("mic")
    source = AlsaSource(AudioConfig(source="alsa", device=card.MIC, sample_rate=48000))
    stats, problems = AudioStats(), list[str | None]()
    task = asyncio.create_task(source.run(functools.partial(add_audio, stats), problems.append))
    try:
        await eventually(lambda: problems and problems[-1], 5)
        assert str(problems[-1]).startswith(f"microphone unavailable: {card.MIC}:"), problems
        await eventually(lambda: stats.frames >= 10, 5)
        assert stats.snapshot()["level_dbfs"] == -100.0  # silence keeps the track alive
        await plugged_back_and_heard(card, stats, problems)
    finally:
        task.cancel()
        card.close()


async def plugged_back_and_heard(
    card: PipeSoundCard, stats: AudioStats, problems: list[str | None]
) -> None:
    """The microphone plugged in again, fed a 1000 Hz tone: no problem, and the tone heard."""
    card.plug("mic")
    with card.feeding(tone(1000, 48000, 1, 1.0), 48000, 1):
        await eventually(lambda: problems[-1] is None, 10)
        await eventually(lambda: stats.snapshot()["frequency_hz"] == 1000, 5)


async def test_a_microphone_whose_stream_ends_mid_call_is_reopened_when_it_returns(
    card: PipeSoundCard,
) -> None:
    """Pulled mid-stream, the pipe card's `file` PCM reads at once and forever (end of file):
    taken for a runaway device, it is let go, silence goes out at the device's own pace (not
    stale periods at thousands a second), and the microphone is taken back when it returns."""
    card.plug("mic")
    source = AlsaSource(AudioConfig(source="alsa", device=card.MIC, sample_rate=48000))
    stats, problems = AudioStats(), list[str | None]()
    task = asyncio.create_task(source.run(functools.partial(add_audio, stats), problems.append))
    try:
        with card.feeding(tone(1000, 48000, 1, 1.0), 48000, 1):
            await eventually(lambda: stats.snapshot()["frequency_hz"] == 1000, 5)
        card.unplug("mic")
        await eventually(lambda: str(problems[-1]).startswith("microphone "), 5)
        frames, since = stats.frames, time.monotonic()
        await asyncio.sleep(2.0)
        per_second = (stats.frames - frames) / (time.monotonic() - since)
        assert 40 <= per_second <= 60, per_second  # 20 ms periods: 50 a second
        await plugged_back_and_heard(card, stats, problems)
    finally:
        task.cancel()
        card.close()


def test_a_device_is_a_runaway_only_when_far_faster_than_its_clock() -> None:
    now = [0.0]
    check = RunawayCheck(48000, clock=lambda: now[0])
    for _ in range(500):  # ten seconds in real time, 20 ms at a time
        now[0] += 0.02
        check.moved(960)
    check.moved(48000)  # a whole second's buffer at once, as at a start: not yet
    with pytest.raises(RunawayDeviceError, match="its stream has ended"):
        for _ in range(300):  # 3 s more of audio within the same instant
            check.moved(480)


async def test_call_from_one_devices_microphone_to_the_others_speaker(
    plugged: PipeSoundCard,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    talker = daemon_config(
        room_server,
        "dev-a",
        audio={"source": "alsa", "device": plugged.MIC, "sample_rate": 16000},
        voice={"noise_suppression": False},  # a steady tone is just what it would remove
    )
    listener = daemon_config(
        room_server, "dev-b", speaker={"enabled": True, "device": plugged.SPEAKER}
    )
    with plugged.feeding(tone(523, 16000, 1, 1.0), 16000, 1):
        async with running(talker) as a, running(listener) as b:
            # The renderer still measures the audio the speaker plays.
            await eventually(lambda: received(b, "dev-a").get("audio", {}).get("frequency_hz"), 20)
            played = await asyncio.to_thread(plugged.record, 48000, 2, 1.5)
            media = b.media()
            assert a.state.current.audio_source_problem is None
            assert b.state.current.speaker_problem is None
    for frequency, level in analyse(played, 48000, 2):
        assert frequency == pytest.approx(523, abs=2)
        assert level > -30
    (entry,) = media.values()
    assert entry["audio"]["frequency_hz"] == pytest.approx(523, abs=2)
    assert entry["speaker"]["level_dbfs"] > -30  # and the speaker plays it


async def test_volume_commands_set_a_participant_and_the_master_volume(
    plugged: PipeSoundCard,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    talker = daemon_config(room_server, "dev-a", audio={"tone_frequency_hz": 523.0})
    listener = daemon_config(
        room_server, "dev-b", speaker={"enabled": True, "device": plugged.SPEAKER}
    )
    async with running(talker), running(listener) as b:
        await eventually(lambda: received(b, "dev-a").get("audio", {}).get("frequency_hz"), 20)
        (talker_id,) = [p.id for p in b.state.current.participants]

        async def speaker_level() -> float:
            played = await asyncio.to_thread(plugged.record, 48000, 2, 1.0)
            return analyse(played, 48000, 2)[0][1]

        full = await speaker_level()
        half = SetVolumeCommand(participant=talker_id, volume=0.5)
        assert (await b.execute(half)).ok
        await asyncio.sleep(0.3)  # what the device buffers was mixed before
        halved = await speaker_level()
        assert (await b.execute(SetVolumeCommand(volume=0.0))).ok
        await asyncio.sleep(0.3)
        silent = await speaker_level()
        unknown = await b.execute(SetVolumeCommand(participant="nobody", volume=1))
        assert b.media()[talker_id]["speaker"]["volume"] == 0.5
    assert halved == pytest.approx(full - 6.0, abs=1), (full, halved)
    assert silent == -100.0
    assert unknown.error is not None
    assert unknown.error.code == "unknown-participant"
    assert unknown.error.message == "participant: 'nobody' is not in the call"


async def test_volume_without_a_speaker_is_refused(
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    async with running(daemon_config(None, "dev-a")) as daemon:
        result = await daemon.execute(SetVolumeCommand(volume=0.5))
    assert result.error is not None and result.error.code == "no-speaker", result


def test_vcalld_devices_lists_the_pcms_an_installer_can_name(card: PipeSoundCard) -> None:
    listing = subprocess.run(
        [str(BIN / "vcalld"), "devices"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    capture = listing.split("Capture PCMs (audio.device):\n")[1].split("Playback PCMs")[0]
    playback = listing.split("Playback PCMs (speaker.device):\n")[1]
    assert "  vcalld_test_mic\n" in capture
    assert "  vcalld_test_speaker\n" in playback
    assert listing.startswith("Cameras (a path, by-id name or card name works as video.device):")
