"""The kiosk's own devices failing mid-call: the camera unplugged, the sound card gone, the X
server restarted, the recording disk full. A kiosk (`d-kiosk`) with a camera behind the
interface the V4L2 code implements (tests/camera.py: no CI machine has one), a microphone and
speaker on real libasound (tests/soundcard.py), its screen on a real X server (Xvfb) and its
recordings on a 64 KiB tmpfs, in a call with a watcher. Each device is away for
OUTAGE_SECONDS; recovery is counted from its return. The tmpfs needs root in a mount namespace
of its own (`make bench-faults` runs it so)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path

from bench.fault_call import (
    RECOVERY_LIMIT_SECONDS,
    Call,
    Row,
    flowing,
    flowing_both_ways,
    seconds_until,
)
from tests.camera import FakeCameraSystem, FakeDevice, fake_camera
from tests.helpers import eventually, received, recording_failure, running, tiny_disk
from tests.soundcard import PipeSoundCard, tone
from tests.xserver import x_server
from vcalld.commands import StartRecordingCommand, StopRecordingCommand
from vcalld.daemon import Daemon
from vcalld.media.sources.camera import CameraSource

OUTAGE_SECONDS = 3.0
KIOSK = "d-kiosk"
TONE_HZ = 1000
RATE = 48000
SCREEN = (640, 360)


async def device_faults(call: Call) -> list[Row]:
    camera = fake_camera()
    card = PipeSoundCard(call.folder)
    os.environ["ALSA_CONFIG_PATH"] = card.config_path  # libasound reads it at every open
    with tiny_disk(call.folder / "recordings") as disk, ExitStack() as screen:
        display = screen.enter_context(x_server(*SCREEN))
        os.environ["DISPLAY"] = display
        config = call.config(
            KIOSK,
            video={"source": "camera"},
            audio={"source": "alsa", "device": card.MIC, "sample_rate": RATE},
            voice={"noise_suppression": False},  # a steady tone is just what it would remove
            speaker={"enabled": True, "device": card.SPEAKER},
            display={"renderer": "display", "driver": "x11", "width": 0, "height": 0},
            recorder={"enabled": True, "directory": str(disk), "record_at_start": False},
        )
        source = CameraSource(config.video, FakeCameraSystem(camera))
        async with AsyncExitStack() as sound:
            await sound.enter_async_context(_sound_card_in(card))
            async with (
                running(config, video_source=source) as kiosk,
                running(call.config("d-watcher")) as watcher,
            ):
                await eventually(lambda: _whole(kiosk, watcher), RECOVERY_LIMIT_SECONDS, period=0.5)
                return [
                    await _camera_replug(kiosk, watcher, camera),
                    await _sound_card_replug(kiosk, watcher, card, sound),
                    await _x_server_restart(kiosk, watcher, screen, display),
                    await _disk_full(kiosk, watcher, disk),
                ]
    raise AssertionError("unreachable")


async def _whole(kiosk: Daemon, watcher: Daemon) -> bool:
    """Video both ways, the kiosk's tone heard, and no device problem."""
    state = kiosk.state.current
    problems = (
        state.video_source_problem,
        state.audio_source_problem,
        state.speaker_problem,
        state.display_problem,
    )
    return await flowing_both_ways(kiosk, watcher) and _heard(watcher) and problems == (None,) * 4


def _heard(watcher: Daemon) -> bool:
    return bool(received(watcher, KIOSK).get("audio", {}).get("frequency_hz") == TONE_HZ)


async def _camera_replug(kiosk: Daemon, watcher: Daemon, camera: FakeDevice) -> Row:
    camera.unplug()
    await asyncio.sleep(OUTAGE_SECONDS)
    problem = kiosk.state.current.video_source_problem
    stopped = not await flowing(watcher, KIOSK)
    camera.plug()

    async def camera_back() -> bool:
        return kiosk.state.current.video_source_problem is None and await flowing(watcher, KIOSK)

    back = await seconds_until(camera_back, time.monotonic())
    notes = f"while out: {problem!r}, the watcher "
    notes += "got black (no stamped frames)" if stopped else "still got the camera's frames"
    return Row("camera unplug/replug", f"{OUTAGE_SECONDS:g} s", back, notes)


@asynccontextmanager
async def _sound_card_in(card: PipeSoundCard) -> AsyncIterator[None]:
    """Microphone and speaker plugged in, the tone fed to one and the other drained, as a
    USB sound card's clock runs them."""
    card.plug("mic")
    card.plug("speaker")
    try:
        with card.feeding(tone(TONE_HZ, RATE, 1, 1.0), RATE, 1), card.taping(RATE, 2):
            yield
    finally:
        card.close()


async def _sound_card_replug(
    kiosk: Daemon, watcher: Daemon, card: PipeSoundCard, sound: AsyncExitStack
) -> Row:
    """A USB sound card pulled: microphone and speaker go at once."""
    await sound.aclose()
    await asyncio.sleep(OUTAGE_SECONDS)
    microphone = kiosk.state.current.audio_source_problem
    silent = not _heard(watcher)
    await sound.enter_async_context(_sound_card_in(card))

    def sound_back() -> bool:
        state = kiosk.state.current
        return (state.audio_source_problem, state.speaker_problem) == (None, None) and _heard(
            watcher
        )

    back = await seconds_until(sound_back, time.monotonic(), window=0)
    notes = f"while out: {microphone!r}, the watcher heard "
    notes += "silence" if silent else "the tone still"
    # The test card's speaker is a file PCM: libasound creates the missing file and plays
    # into it at once, which the runaway check takes for a lost speaker, again and again.
    notes += "; the speaker, a file PCM here, was lost each time it ran away"
    return Row("sound card gone and back", f"{OUTAGE_SECONDS:g} s", back, notes)


async def _x_server_restart(kiosk: Daemon, watcher: Daemon, screen: ExitStack, display: str) -> Row:
    """Xlib ends the process whose X server goes away: the screen's, never the daemon."""
    screen.close()
    await asyncio.sleep(OUTAGE_SECONDS)
    problem = kiosk.state.current.display_problem
    call_on = await flowing_both_ways(kiosk, watcher)
    screen.enter_context(x_server(*SCREEN, display))
    back = await seconds_until(
        lambda: kiosk.state.current.display_problem is None, time.monotonic(), window=0
    )
    notes = f"while out: {problem!r}; the call "
    notes += "went on (video both ways)" if call_on else "stopped"
    return Row("X server restart", f"{OUTAGE_SECONDS:g} s", back, notes)


async def _disk_full(kiosk: Daemon, watcher: Daemon, disk: Path) -> Row:
    """The recording ends with the reason and the call goes on; with room again, the next
    recording runs. Logs are the journal's: it keeps within its own limits on a full disk."""
    assert kiosk.recorder is not None
    recorder = kiosk.recorder
    started = time.monotonic()
    await kiosk.execute(StartRecordingCommand())
    reason = await eventually(lambda: recording_failure(recorder), RECOVERY_LIMIT_SECONDS)
    full_after = time.monotonic() - started
    call_on = await flowing_both_ways(kiosk, watcher)
    await kiosk.execute(StopRecordingCommand())
    await asyncio.to_thread(_empty, disk)
    freed = time.monotonic()
    await kiosk.execute(StartRecordingCommand())

    def recording_again() -> bool:  # (until the small disk is full again)
        return any(e["recording"]["video_frames"] > 0 for e in recorder.snapshot().values())

    back = await seconds_until(recording_again, freed, window=0)
    notes = f"full {full_after:.0f} s after start-recording: {reason!r}; the call "
    notes += "went on" if call_on else "stopped"
    notes += "; after the files were removed, start-recording records again"
    return Row("recording disk full", "-", back, notes)


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
