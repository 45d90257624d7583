"""A camera's own H.264 sent as it is (`camera_format = "h264-passthrough"`): from its first
IDR, at the camera's size, H.264 alone negotiated and our encoder idle; the peers' keyframe
needs reach the camera as V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, so a late joiner sees the
picture within a second or two although the camera's own IDRs are 10 s apart; and a camera
unplugged and plugged back in is resumed from its next IDR."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import av
import pytest

from tests.camera import FakeCameraSystem, FakeDevice, fake_camera, keyframe_button
from tests.helpers import eventually, received, running, video_ok, video_transceiver
from vcalld.call import aiortc_hooks
from vcalld.config import VcalldConfig
from vcalld.media.camera.convert import H264Packets
from vcalld.media.camera.device import CameraMode, ControlError, checked_control_value
from vcalld.media.sources.base import EncodedVideoSource, KeyframeSource
from vcalld.media.sources.camera import CameraSource, H264CameraSource, camera_source
from vcalld.room.server import RoomServer

MODE = CameraMode("H264", 640, 480, 30)
VIDEO = {"source": "camera", "camera_format": "h264-passthrough", "width": 640, "height": 480}


def h264_camera() -> FakeDevice:
    device = fake_camera("H264 Camera")
    device.controls = keyframe_button()
    return device


def test_packets_start_at_an_idr_and_say_which_are_keyframes() -> None:
    device = h264_camera()
    camera = FakeCameraSystem(device).open(device.info)
    camera.start(MODE)
    first = camera.read(timeout=1)
    assert first is not None
    packets = H264Packets(MODE)
    raws = [camera.read(timeout=1) for _ in range(5)]  # after the stream's only IDR
    assert [packets.convert(raw) for raw in raws if raw is not None] == [None] * 5

    camera.set_control("force_key_frame", True)
    sent = []
    for _ in range(3):
        raw = camera.read(timeout=1)
        assert raw is not None
        packet = packets.convert(raw)
        assert packet is not None and bytes(packet) == raw.data
        sent.append(packet.is_keyframe)
    assert sent == [True, False, False]
    decoder = av.CodecContext.create("h264", "r")
    assert decoder.decode(H264Packets(MODE).convert(first))[0].width == 640


def test_a_button_takes_true_only() -> None:
    controls = keyframe_button()
    assert checked_control_value(controls, "force_key_frame", True) == 1
    with pytest.raises(ControlError, match="force_key_frame is a button: it takes true, not 1"):
        checked_control_value(controls, "force_key_frame", 1)
    assert controls["force_key_frame"].describe() == "force_key_frame (button: set to true)"


def test_the_camera_entry_point_passes_through_only_when_asked(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    decoded = camera_source(daemon_config(room_server, "a", video={"source": "camera"}).video)
    assert type(decoded) is CameraSource and not isinstance(decoded, EncodedVideoSource)
    passing = camera_source(daemon_config(room_server, "b", video=VIDEO).video)
    assert isinstance(passing, EncodedVideoSource) and isinstance(passing, KeyframeSource)


@pytest.mark.slow
async def test_the_camera_s_h264_reaches_the_peers_as_it_is_and_keyframes_on_request(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    device = h264_camera()
    kiosk_config = daemon_config(room_server, "kiosk", video=VIDEO)
    source = H264CameraSource(kiosk_config.video, FakeCameraSystem(device))
    async with (
        running(kiosk_config, video_source=source) as kiosk,
        running(daemon_config(room_server, "viewer")) as viewer,
    ):
        await eventually(lambda: video_ok(received(viewer, "kiosk")), 20)
        ours = video_transceiver(kiosk)
        assert {codec.mimeType for codec in ours._codecs} <= {"video/H264", "video/rtx"}
        assert not aiortc_hooks.video_encoder_used(ours)
        seen = received(viewer, "kiosk")["video"]
        assert seen["pattern_frames"] >= 0.9 * seen["stamped_frames"] > 0, seen

        # A late joiner: the camera's next own IDR is seconds away, a forced one is not.
        pushed = len(device.buttons_pushed)
        async with running(daemon_config(room_server, "late")) as late:
            await eventually(lambda: video_ok(received(late, "kiosk")), 4)
        assert len(device.buttons_pushed) > pushed

        # Unplugged: the reason is in the state; back, the picture resumes at an IDR.
        device.unplug()
        await eventually(lambda: kiosk.state.current.video_source_problem is not None, 5)
        assert "camera" in str(kiosk.state.current.video_source_problem)
        await asyncio.sleep(0.5)
        frames = received(viewer, "kiosk")["video"]["frames"]
        device.plug()
        await eventually(lambda: kiosk.state.current.video_source_problem is None, 10)
        await eventually(lambda: received(viewer, "kiosk")["video"]["frames"] > frames + 30, 5)
        await eventually(lambda: video_ok(received(viewer, "kiosk")), 5)  # fps past the gap
