"""The camera source on a fake V4L2 device (tests/camera.py): mode choice, every camera format
by content, the keyframe flag, controls, unplug and replug, a stalled camera, and the camera
in a call. The same code on the kernel's vivid camera is tested in the test bed."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from av import VideoFrame
from av.frame import Frame

from tests.camera import BRIGHTNESS_DEFAULT, FakeCameraSystem, FakeDevice, fake_camera
from tests.helpers import eventually, received, running, video_ok
from vcalld.commands import SetCameraControlCommand
from vcalld.config import VcalldConfig, VideoConfig
from vcalld.media.camera.capture import FILLER_FPS
from vcalld.media.camera.convert import FrameConverter
from vcalld.media.camera.device import (
    CameraInfo,
    CameraMode,
    CameraUnavailableError,
    ControlError,
    find_camera,
)
from vcalld.media.camera.linux import LinuxCameraSystem
from vcalld.media.camera.listing import describe_cameras
from vcalld.media.camera.modes import choose_mode, fit_within
from vcalld.media.frames import BLACK_LUMA
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import bars_match, read_stamp
from vcalld.media.sources.camera import CameraSource
from vcalld.room.server import RoomServer

WEBCAM = fake_camera().modes
V4L2_MAJOR = 81


@pytest.mark.parametrize(
    ("size", "fps", "pixel_format", "chosen"),
    [
        # YUYV reaches 1080p only at 5 fps: MJPEG is the way to 60.
        ((1920, 1080), 60, None, CameraMode("MJPG", 1920, 1080, 60)),
        ((1280, 720), 30, None, CameraMode("MJPG", 1280, 720, 30)),
        # Raw costs no decoding when it reaches size and rate.
        ((640, 480), 30, None, CameraMode("YUYV", 640, 480, 30)),
        ((320, 240), 30, None, CameraMode("NV12", 320, 240, 30)),
        # The smallest size that covers a size nobody offers, then scaled down.
        ((960, 540), 30, None, CameraMode("MJPG", 1280, 720, 30)),
        ((1280, 720), 30, "H264", CameraMode("H264", 1280, 720, 30)),
        # Beyond what the camera can: as close as it gets.
        ((3840, 2160), 30, None, CameraMode("MJPG", 1920, 1080, 30)),
        ((1280, 720), 120, None, CameraMode("MJPG", 1280, 720, 60)),
    ],
)
def test_the_mode_that_reaches_size_and_rate_cheapest(
    size: tuple[int, int], fps: int, pixel_format: Any, chosen: CameraMode
) -> None:
    assert choose_mode(WEBCAM, *size, fps, pixel_format) == chosen


def test_a_format_the_camera_lacks_names_what_it_has() -> None:
    raw_only = [CameraMode("YUYV", 640, 480, 30)]
    with pytest.raises(CameraUnavailableError, match=r"no H264 format \(offers: YUYV\)"):
        choose_mode(raw_only, 640, 480, 30, "H264")


def test_frames_are_scaled_down_to_fit_never_up_nor_stretched() -> None:
    assert fit_within(1920, 1080, 1280, 720) == (1280, 720)
    assert fit_within(1920, 1080, 640, 480) == (640, 360)
    assert fit_within(640, 480, 1280, 720) == (640, 480)


def test_a_camera_is_found_by_path_by_id_name_or_card_name() -> None:
    first = CameraInfo("/dev/video0", "Integrated Camera", "uvcvideo", "usb-1", ("usb-int",))
    second = CameraInfo("/dev/video2", "HD Pro Webcam C920", "uvcvideo", "usb-2", ("usb-c920",))
    cameras = [first, second]
    assert find_camera(cameras, "") == first
    assert find_camera(cameras, "/dev/video2") == second
    assert find_camera(cameras, "usb-c920") == second
    assert find_camera(cameras, "/dev/v4l/by-id/usb-c920") == second
    assert find_camera(cameras, "hd pro webcam c920") == second
    with pytest.raises(CameraUnavailableError, match=r"present: /dev/video0 \(Integrated"):
        find_camera(cameras, "Logitech BRIO")
    with pytest.raises(CameraUnavailableError, match="no camera found"):
        find_camera([], "")


@pytest.mark.parametrize(
    "mode",
    [
        CameraMode("YUYV", 640, 480, 30),
        CameraMode("NV12", 320, 240, 30),
        CameraMode("MJPG", 1280, 720, 30),
        CameraMode("H264", 640, 480, 30),
    ],
    ids=str,
)
def test_every_camera_format_arrives_as_the_picture_it_holds(mode: CameraMode) -> None:
    """Padded rows, JPEG's full range and H.264 each come out as the stamped pattern."""
    camera = FakeCameraSystem(fake_camera()).open(fake_camera().info)
    camera.start(mode)
    converter = FrameConverter(mode, mode.width, mode.height)
    for index in range(5):
        raw = camera.read(timeout=1)
        assert raw is not None
        frame = converter.convert(raw)
        assert frame is not None
        assert (frame.width, frame.height, frame.format.name) == (
            mode.width,
            mode.height,
            "yuv420p",
        )
        luma = picture_plane(frame, 0)
        assert read_stamp(luma) == index
        assert bars_match(luma, picture_plane(frame, 1), picture_plane(frame, 2))


def _keyframes(frames: list[VideoFrame]) -> int:
    encoder = Vp8Encoder()
    count = 0
    for frame in frames:
        payloads, _ = encoder.encode(frame)
        _, data = VpxPayloadDescriptor.parse(payloads[0])
        count += not data[0] & 1  # the VP8 frame tag's inverse key frame bit
    return count


def test_decoded_camera_frames_are_not_all_sent_as_keyframes() -> None:
    """The MJPEG decoder marks every frame intra-coded; passed on, the VP8 encoder makes each
    a keyframe (2x CPU, 2.3x bytes). The control decodes the same frames without the reset."""
    mode = CameraMode("MJPG", 640, 480, 30)
    camera = FakeCameraSystem(fake_camera()).open(fake_camera().info)
    camera.start(mode)
    raws = [camera.read(timeout=1) for _ in range(10)]
    converter = FrameConverter(mode, 640, 480)
    converted = [converter.convert(raw) for raw in raws if raw is not None]
    assert _keyframes([frame for frame in converted if frame is not None]) == 1

    decoder = av.CodecContext.create("mjpeg", "r")
    as_decoded = [
        decoder.decode(av.Packet(raw.data))[0].reformat(format="yuv420p")
        for raw in raws
        if raw is not None
    ]
    assert _keyframes(as_decoded) == 10


@dataclass
class Received:
    """What a camera source published and reported, as the outgoing media would see it."""

    frames: list[tuple[float, VideoFrame]] = field(default_factory=list)
    problems: list[str | None] = field(default_factory=list)

    def publish(self, frame: Frame) -> None:
        assert isinstance(frame, VideoFrame)
        self.frames.append((time.monotonic(), frame))

    def since(self, moment: float) -> list[VideoFrame]:
        return [frame for at, frame in self.frames if at >= moment]

    @property
    def problem(self) -> str | None:
        return self.problems[-1] if self.problems else None


def _video(**settings: Any) -> VideoConfig:
    return VideoConfig.model_validate({"source": "camera", **settings})


@asynccontextmanager
async def capturing(
    device: FakeDevice, **settings: Any
) -> AsyncIterator[tuple[CameraSource, Received]]:
    source = CameraSource(_video(**settings), FakeCameraSystem(device))
    seen = Received()
    task = asyncio.create_task(source.run(seen.publish, seen.problems.append))
    try:
        yield source, seen
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _mean_luma(frame: VideoFrame) -> float:
    return float(picture_plane(frame, 0).mean())


def _rate(frames: list[VideoFrame]) -> float:
    pts = [frame.pts for frame in frames if frame.pts is not None]
    return (len(pts) - 1) / ((pts[-1] - pts[0]) / 90000)


async def test_capture_streams_the_mode_at_its_rate_on_one_clock() -> None:
    async with capturing(fake_camera(), width=1280, height=720, fps=30) as (_, seen):
        await asyncio.sleep(1.6)
    frames = [frame for _, frame in seen.frames]
    assert 40 <= len(frames) <= 52
    assert {(frame.width, frame.height) for frame in frames} == {(1280, 720)}
    assert all(frame.pict_type == 0 for frame in frames)
    stamps = [read_stamp(picture_plane(frame, 0)) for frame in frames]
    assert stamps == list(range(len(frames)))  # none dropped, none repeated
    assert 27 <= _rate(frames) <= 33
    assert seen.problems == [None]


async def test_unplugged_camera_sends_black_and_resumes_when_plugged_back() -> None:
    device = fake_camera()
    async with capturing(device, width=640, height=480, fps=30) as (_, seen):
        await eventually(lambda: len(seen.frames) > 10, within=5)
        device.unplug()
        await eventually(lambda: seen.problem and "unavailable" in seen.problem, within=5)
        assert seen.problem == "camera unavailable: no camera found"
        gone = time.monotonic()
        await asyncio.sleep(1.5)
        black = seen.since(gone)
        # The track goes on: black frames of the same size at the filler rate.
        assert FILLER_FPS - 2 <= len(black) / 1.5 <= FILLER_FPS + 2
        assert all(_mean_luma(frame) == BLACK_LUMA for frame in black)
        assert {(frame.width, frame.height) for frame in black} == {(640, 480)}

        device.plug()
        back = time.monotonic()
        await eventually(lambda: seen.problem is None, within=8)
        await eventually(lambda: len(seen.since(back)) > 30, within=5)
    assert read_stamp(picture_plane(seen.frames[-1][1], 0)) is not None
    pts = [frame.pts for _, frame in seen.frames if frame.pts is not None]
    assert pts == sorted(set(pts))  # timestamps run on across the outage
    assert device.opened == 2


async def test_a_camera_that_stops_delivering_is_reopened() -> None:
    device = fake_camera()
    async with capturing(device, width=640, height=480, fps=30) as (_, seen):
        await eventually(lambda: len(seen.frames) > 10, within=5)
        device.delivering = False
        await eventually(lambda: seen.problem is not None, within=5)
        assert seen.problem == "camera lost: no frame for 2 s"
        device.delivering = True
        await eventually(lambda: device.opened == 2 and seen.problem is None, within=5)


async def test_controls_from_config_and_commands_reach_the_picture_and_survive_replug() -> None:
    device = fake_camera()
    settings = {"width": 320, "height": 240, "fps": 30}
    controls = {"brightness": 148, "power_line_frequency": "50 Hz"}
    async with capturing(device, **settings, controls=controls) as (source, seen):
        await eventually(lambda: len(seen.frames) > 5, within=5)
        assert device.controls["power_line_frequency"].value == 1
        assert device.controls["brightness"].value == 148
        brighter = _mean_luma(seen.frames[-1][1])

        assert await source.set_control("brightness", 112) == 112
        changed = time.monotonic()
        await eventually(lambda: len(seen.since(changed)) > 3, within=5)
        darker = _mean_luma(seen.since(changed)[-1])
        assert brighter - darker == pytest.approx(36, abs=2)

        with pytest.raises(ControlError, match=r"takes 0 to 255, not 300") as error:
            await source.set_control("brightness", 300)
        assert error.value.field == "value"
        with pytest.raises(ControlError, match=r"no control 'exposure'.*it has: brightness"):
            await source.set_control("exposure", 10)
        with pytest.raises(ControlError, match=r"one of 0 \(Disabled\), 1 \(50 Hz\)"):
            await source.set_control("power_line_frequency", "55 Hz")
        with pytest.raises(ControlError, match="steps of 10"):
            await source.set_control("zoom_absolute", 105)
        assert await source.set_control("focus_automatic_continuous", False) == 0

        device.unplug()
        await eventually(lambda: seen.problem and "unavailable" in seen.problem, within=5)
        with pytest.raises(CameraUnavailableError):
            await source.set_control("brightness", 100)
        device.plug()  # at its defaults again
        await eventually(lambda: seen.problem is None, within=8)
        assert device.controls["brightness"].value == 112
        assert device.controls["power_line_frequency"].value == 1
        assert device.controls["focus_automatic_continuous"].value == 0


async def test_a_control_the_camera_lacks_in_config_is_logged_and_capture_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with capturing(fake_camera(), controls={"pan_absolute": 3}) as (_, seen):
        await eventually(lambda: len(seen.frames) > 5, within=5)
    assert "camera control pan_absolute: the camera has no control" in caplog.text


async def test_the_camera_in_a_call_and_set_camera_control(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    """The far end decodes the camera's stamped pattern; the command changes the picture
    it sees, and names what is wrong with a bad one."""
    video = {"source": "camera", "width": 640, "height": 480, "fps": 30}
    kiosk_config = daemon_config(room_server, "kiosk", video=video)
    camera = CameraSource(kiosk_config.video, FakeCameraSystem(fake_camera()))
    async with (
        running(kiosk_config, video_source=camera) as kiosk,
        running(daemon_config(room_server, "viewer")) as viewer,
    ):
        await eventually(lambda: video_ok(received(viewer, "kiosk")), within=30)
        before = received(viewer, "kiosk")["video"]["luma"]
        brighten = SetCameraControlCommand(control="brightness", value=BRIGHTNESS_DEFAULT + 60)
        assert (await kiosk.execute(brighten)).ok
        await eventually(
            lambda: received(viewer, "kiosk")["video"]["luma"] > before + 40, within=10
        )

        bad = await kiosk.execute(SetCameraControlCommand(control="brightness", value=999))
        assert bad.error is not None
        assert (bad.error.code, bad.error.message) == (
            "invalid-control",
            "value: brightness takes 0 to 255, not 999",
        )
        unknown = await kiosk.execute(SetCameraControlCommand(control="iris", value=1))
        assert unknown.error is not None
        assert unknown.error.message.startswith("control: the camera has no control 'iris'")

        no_camera = await viewer.execute(SetCameraControlCommand(control="brightness", value=1))
        assert no_camera.error is not None
        assert (no_camera.error.code, no_camera.error.message) == (
            "no-camera",
            "the video source is test-pattern, no camera",
        )


def test_devices_lists_each_camera_with_formats_rates_and_controls() -> None:
    webcam = fake_camera("HD Pro Webcam C920", "/dev/video2")
    listing = describe_cameras(FakeCameraSystem(webcam))
    assert listing.splitlines()[1:5] == [
        "  /dev/video2: HD Pro Webcam C920 (uvcvideo, usb-0000:00:14.0-1)",
        "    by-id: usb-HD Pro Webcam C920-video-index0",
        "    YUYV: 1920x1080 (5 fps), 1280x720 (10 fps), 640x480 (30 fps)",
        "    MJPG: 1920x1080 (30/60 fps), 1280x720 (30/60 fps), 640x480 (30/60 fps)",
    ]
    assert "      brightness (0 to 255, step 1, default 128) = 128" in listing
    assert "      power_line_frequency (menu: 0: Disabled, 1: 50 Hz, 2: 60 Hz) = 2" in listing
    webcam.unplug()
    assert describe_cameras(FakeCameraSystem(webcam)).endswith("  (none)")


@pytest.fixture
def lingering_node(tmp_path: Path) -> Path:
    """/dev/video0 as it is for a moment after an unplug: the node is there, the device is
    not (a V4L2 minor that no driver holds: opening it fails)."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(tmp_path / "video0", 0o660 | stat.S_IFCHR, os.makedev(V4L2_MAJOR, 250))
    return tmp_path


def test_a_camera_node_that_no_longer_opens_is_not_listed(lingering_node: Path) -> None:
    system = LinuxCameraSystem(lingering_node)
    assert system.cameras() == []
    assert describe_cameras(system).endswith("  (none)")


async def test_capture_on_a_lingering_node_waits_in_black(lingering_node: Path) -> None:
    """The real V4L2 code, not the fake: a vanishing camera is a problem to report, never an
    exception that ends the daemon."""
    source = CameraSource(_video(width=320, height=240), LinuxCameraSystem(lingering_node))
    seen = Received()
    task = asyncio.create_task(source.run(seen.publish, seen.problems.append))
    await eventually(lambda: len(seen.frames) >= 3, within=5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(seen.problems) == {"camera unavailable: no camera found"}
    assert all(_mean_luma(frame) == BLACK_LUMA for _, frame in seen.frames)
