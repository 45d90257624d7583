"""Screen sharing: an X server's screen (Xvfb showing the stamped test pattern) goes out
instead of the camera, or next to it as a second track, is recognised by the far end, and
the camera comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from av import VideoFrame

from tests.conftest import Device
from tests.helpers import eventually, received, running, video_ok
from tests.test_config import problems, write
from tests.xserver import showing_pattern, x_server
from vcalld.commands import StartScreenShareCommand, StopScreenShareCommand
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.media.frames import black_video
from vcalld.media.timeline import VideoTimeline
from vcalld.room.server import RoomServer
from vcalld.state import screen_of

SCREEN = (640, 480)
CAMERA = (320, 240)


async def test_the_screen_goes_out_instead_of_the_camera_and_the_camera_comes_back(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    with x_server(*SCREEN) as display, showing_pattern(display, *SCREEN):
        sharing = daemon_config(
            room_server,
            "dev-a",
            video={"width": CAMERA[0], "height": CAMERA[1]},
            screen_share={"display": display, "fps": 15, "mouse": False},
        )
        async with running(sharing) as a, running(daemon_config(room_server, "dev-b")) as b:
            await eventually(lambda: video_ok(received(b, "dev-a"), CAMERA), 20)
            assert (await a.execute(StartScreenShareCommand())).ok
            shared_state = a.state.current
            # The far end recognises the pattern the X server shows, at the screen's size.
            await eventually(lambda: video_ok(received(b, "dev-a"), SCREEN, min_fps=10), 15)
            first = received(b, "dev-a")["video"]["last_stamp"]
            await eventually(lambda: received(b, "dev-a")["video"]["last_stamp"] > first + 5, 5)
            assert (await a.execute(StopScreenShareCommand())).ok
            await eventually(lambda: video_ok(received(b, "dev-a"), CAMERA), 10)
            back_state = a.state.current
    assert (shared_state.video_source, shared_state.video_source_problem) == ("screen", None)
    assert back_state.video_source == "test-pattern"


def screen_from(daemon: Daemon, name: str) -> dict[str, Any]:
    """What `daemon`'s sink measured of the screen the participant `name` shares."""
    ids = [p.id for p in daemon.state.current.participants if p.name == name]
    return daemon.renderer.snapshot().get(screen_of(ids[0]), {}) if ids else {}


async def test_the_screen_as_a_second_track_arrives_next_to_the_camera(device: Device) -> None:
    """The far end gets a second video track, the screen, while the camera goes on; stop
    ends the screen's frames alone, and sharing again brings them back."""
    with x_server(*SCREEN) as display, showing_pattern(display, *SCREEN):
        sharing = device(
            "dev-a",
            video={"width": CAMERA[0], "height": CAMERA[1]},
            screen_share={"display": display, "fps": 15, "mouse": False, "second_track": True},
        )
        async with running(sharing) as a, running(device("dev-b")) as b:
            await eventually(lambda: video_ok(received(b, "dev-a"), CAMERA), 20)
            assert screen_from(b, "dev-a") == {}
            assert (await a.execute(StartScreenShareCommand())).ok
            await eventually(lambda: video_ok(screen_from(b, "dev-a"), SCREEN, min_fps=10), 15)
            assert video_ok(received(b, "dev-a"), CAMERA)  # the camera, all along
            assert a.state.current.video_source == "screen"

            assert (await a.execute(StopScreenShareCommand())).ok
            await asyncio.sleep(1.0)
            frames = screen_from(b, "dev-a")["video"]["frames"]
            await asyncio.sleep(1.0)
            assert screen_from(b, "dev-a")["video"]["frames"] == frames
            assert video_ok(received(b, "dev-a"), CAMERA)

            assert (await a.execute(StartScreenShareCommand())).ok
            await eventually(lambda: screen_from(b, "dev-a")["video"]["frames"] > frames + 15, 10)


async def test_a_missing_display_sends_black_says_why_and_stop_returns_to_the_camera(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    sharing = daemon_config(
        room_server, "dev-a", screen_share={"display": ":249", "width": 320, "height": 180}
    )
    async with running(sharing) as a, running(daemon_config(room_server, "dev-b")) as b:
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        assert (await a.execute(StartScreenShareCommand())).ok
        await eventually(lambda: a.state.current.video_source_problem, 10)
        problem = a.state.current.video_source_problem
        await eventually(lambda: received(b, "dev-a")["video"]["width"] == 320, 10)
        black = received(b, "dev-a")["video"]["luma"]
        assert (await a.execute(StopScreenShareCommand())).ok
        await eventually(lambda: video_ok(received(b, "dev-a")), 10)
        after = a.state.current
    assert problem is not None and problem.startswith("screen unavailable: "), problem
    assert black is not None and black < 20
    assert (after.video_source, after.video_source_problem) == ("test-pattern", None)


def test_one_timeline_carries_the_video_across_a_change_of_source() -> None:
    """Each source keeps its own clock; its first frame follows the last one sent by the time
    that passed, whatever its own pts say (x11grab's are microseconds of wall time)."""
    now = [100.0]
    timeline = VideoTimeline(clock=lambda: now[0])

    def frame(pts: int, time_base: Fraction) -> VideoFrame:
        made = black_video(16, 16)
        made.pts, made.time_base = pts, time_base
        return made

    sent = []
    for index in range(3):  # the camera at 90 kHz, 30 fps
        sent.append(timeline.stamp("camera", frame(index * 3000, Fraction(1, 90000))).pts)
        now[0] += 1 / 30
    for index in range(3):  # the screen at 1 MHz wall-clock, 10 fps
        screen = frame(1_700_000_000_000_000 + index * 100_000, Fraction(1, 1_000_000))
        sent.append(timeline.stamp("screen", screen).pts)
        now[0] += 0.1
    sent.append(timeline.stamp("camera", frame(99 * 3000, Fraction(1, 90000))).pts)
    assert sent == [0, 3000, 6000, 9000, 18000, 27000, 36000]


async def test_the_screen_as_the_configured_video_source(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    with x_server(*SCREEN) as display, showing_pattern(display, *SCREEN):
        video = {"source": "screen", "uri": display, "width": 640, "height": 480, "fps": 15}
        async with (
            running(daemon_config(room_server, "dev-a", video=video)),
            running(daemon_config(room_server, "dev-b")) as b,
        ):
            await eventually(lambda: video_ok(received(b, "dev-a"), SCREEN, min_fps=10), 20)


def test_the_screen_sources_uri_is_a_display(tmp_path: Path) -> None:
    path = write(tmp_path, '[video]\nsource = "screen"\nuri = "/etc/passwd"\n')
    (found,) = problems(path)
    assert found.startswith(f"{path}:1: video: the screen source's `uri` is an X display"), found
