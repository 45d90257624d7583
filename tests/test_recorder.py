"""The recorder: each remote participant to a Matroska file that plays back with the
pattern, the tone and the length of the call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers import eventually, received, recording_failure, running, tiny_disk, video_ok
from vcalld.commands import LeaveCommand, StartRecordingCommand, StopRecordingCommand
from vcalld.config import VcalldConfig
from vcalld.media.display.layout import grid, letterbox
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import bars_match
from vcalld.media.sinks.stats import dominant_frequency
from vcalld.room.server import RoomServer


def left(frame: av.AudioFrame) -> np.ndarray:
    samples = frame.to_ndarray()
    return samples[0] if frame.format.is_planar else samples.reshape(-1, 2)[:, 0]


async def test_each_participant_is_recorded_to_a_file_that_plays_back(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    recording = daemon_config(
        room_server, "dev-b", recorder={"enabled": True, "directory": str(folder)}
    )
    async with running(daemon_config(room_server, "dev-a")) as a, running(recording) as b:
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        first_frame_at = received(b, "dev-a")["video"]["first_frame_at"]
        await asyncio.sleep(3)
        live = b.media()
        assert (await a.execute(LeaveCommand())).ok
        left_at = time.monotonic()
        recorder = b.recorder
        assert recorder is not None
        await eventually(recorder.finished, 10)
        (stats,) = recorder.finished()
    called_for = left_at - first_frame_at
    assert stats.error is None and stats.path.parent == folder and "dev-a" in stats.path.name
    assert any("recording" in entry for entry in live.values()), live
    with av.open(str(stats.path)) as container:
        assert container.duration is not None
        duration = container.duration / av.time_base
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 640, 480)
        assert audio.codec_context.name == "opus"
        pictures = list(container.decode(video=0))
    with av.open(str(stats.path)) as container:
        sound = np.concatenate([left(frame) for frame in container.decode(audio=0)])
    assert duration == pytest.approx(called_for, abs=0.6), (duration, called_for)
    assert len(pictures) >= 25 * called_for * 0.8, len(pictures)
    last = pictures[-1]
    assert bars_match(*(picture_plane(last, index) for index in range(3)))
    middle = sound[len(sound) // 2 : len(sound) // 2 + 24000].astype(np.float64)
    assert dominant_frequency(middle / np.abs(middle).max(), 48000) == pytest.approx(440, abs=3)


async def test_a_recording_that_cannot_be_written_ends_alone_and_the_call_goes_on(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    recording = daemon_config(
        room_server, "dev-b", recorder={"enabled": True, "directory": str(blocked)}
    )
    async with running(daemon_config(room_server, "dev-a")), running(recording) as b:
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        recorder = b.recorder
        assert recorder is not None
        await eventually(
            lambda: any(e["recording"]["error"] for e in recorder.snapshot().values()), 5
        )
        frames = received(b, "dev-a")["video"]["frames"]
        await eventually(lambda: received(b, "dev-a")["video"]["frames"] > frames + 30, 5)
        (entry,) = recorder.snapshot().values()
    assert entry["recording"]["error"].startswith(("FileExistsError", "NotADirectoryError"))


async def test_recording_starts_and_stops_by_command_and_only_where_allowed(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    allowed = {"enabled": True, "record_at_start": False, "directory": str(folder)}
    recording = daemon_config(room_server, "dev-b", recorder=allowed)
    async with (
        running(daemon_config(room_server, "dev-a")) as a,
        running(recording) as b,
    ):
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        recorder = b.recorder
        assert recorder is not None
        idle = (b.state.current.recording, recorder.snapshot(), list(folder.glob("*")))
        assert (await b.execute(StartRecordingCommand())).ok
        await eventually(recorder.snapshot, 5)
        await asyncio.sleep(2)
        started = b.state.current.recording
        assert (await b.execute(StopRecordingCommand())).ok
        (stats,) = recorder.finished()
        stopped = (b.state.current.recording, recorder.snapshot())
        refused = await a.execute(StartRecordingCommand())  # a's config allows none
    assert idle == (False, {}, [])
    assert started is True and stopped == (False, {})
    assert stats.error is None and stats.video_frames >= 40, stats
    with av.open(str(stats.path)) as container:
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(2.0, abs=0.6)
    assert refused.error is not None and refused.error.code == "no-recorder", refused


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """`make pytest` runs the tests in a mount namespace of their own (`unshare --mount`), so
    the host never sees it; run by hand as root, it lives as long as the test."""
    with tiny_disk(tmp_path / "small-disk") as folder:
        yield folder


@pytest.mark.parametrize("mode", ["participants", "composite"])
async def test_a_full_disk_ends_the_recording_with_the_reason_and_the_call_goes_on(
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
    small_disk: Path,
    mode: str,
) -> None:
    recorder_config = {"enabled": True, "directory": str(small_disk), "mode": mode}
    recording = daemon_config(room_server, "dev-b", recorder=recorder_config)
    async with running(daemon_config(room_server, "dev-a")), running(recording) as b:
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        recorder = b.recorder
        assert recorder is not None
        # Ended by the disk (the snapshot says why while the participant is recorded), and
        # the call still on.
        failed = await eventually(lambda: recording_failure(recorder), 30)
        frames = received(b, "dev-a")["video"]["frames"]
        await eventually(lambda: received(b, "dev-a")["video"]["frames"] > frames + 30, 5)
        assert (await b.execute(StopRecordingCommand())).ok
        (stats,) = recorder.finished()
    assert "No space left on device" in failed and stats.error == failed
    assert stats.video_frames > 0


def tone_prominence(signal: np.ndarray, rate: int, frequency: float) -> float:
    """How far the spectrum at `frequency` stands above its median (dB)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    bin_hz = rate / len(signal)
    peak = spectrum[int(frequency / bin_hz) - 2 : int(frequency / bin_hz) + 3].max()
    return float(20 * np.log10(peak / np.median(spectrum)))


async def test_the_composite_records_the_call_as_laid_out_with_everyone_s_sound(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    """Two remote participants: one file, their two patterns in the screen's grid, both
    tones in its sound, as long as the call; closed when the last of them has left."""
    folder = tmp_path / "recordings"
    size = {"composite_width": 640, "composite_height": 360, "composite_fps": 10}
    recorder_config = {"enabled": True, "directory": str(folder), "mode": "composite", **size}
    recording = daemon_config(room_server, "dev-b", recorder=recorder_config)
    a = daemon_config(room_server, "dev-a", audio={"tone_frequency_hz": 440.0})
    c = daemon_config(room_server, "dev-c", audio={"tone_frequency_hz": 1000.0})
    async with running(recording) as b:
        async with running(a), running(c):
            await eventually(lambda: video_ok(received(b, "dev-a"), min_fps=15), 20)
            await eventually(lambda: video_ok(received(b, "dev-c"), min_fps=15), 20)
            await asyncio.sleep(3)
            live = b.media()
        recorder = b.recorder
        assert recorder is not None
        await eventually(recorder.finished, 10)
        (stats,) = recorder.finished()
    assert live["@composite"]["recording"]["path"] == str(stats.path)
    assert stats.error is None and stats.path.name.endswith("-composite.mkv")
    with av.open(str(stats.path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 640, 360)
        assert container.streams.audio[0].codec_context.name == "opus"
        pictures = list(container.decode(video=0))
    with av.open(str(stats.path)) as container:
        sound = np.concatenate([left(frame) for frame in container.decode(audio=0)])
    assert len(pictures) >= 10 * 3, len(pictures)
    assert len(sound) == pytest.approx(len(pictures) / 10 * 48000, rel=0.05)

    both = pictures[len(pictures) * 3 // 4]  # while both were there
    for tile in grid(2, 640, 360):
        shown = letterbox(640, 480, tile)
        planes = [
            picture_plane(both, index)[
                shown.y // scale : (shown.y + shown.height) // scale,
                shown.x // scale : (shown.x + shown.width) // scale,
            ]
            for index, scale in ((0, 1), (1, 2), (2, 2))
        ]
        assert bars_match(*planes), f"no pattern in the tile at {shown}"
    stretch = sound[len(sound) * 3 // 4 : len(sound) * 3 // 4 + 24000].astype(np.float64)
    for tone in (440.0, 1000.0):
        assert tone_prominence(stretch, 48000, tone) > 30, tone
