"""A custom source that publishes H.264 it encoded itself: the packets go out as they are
(H.264 alone negotiated, in the stream's profile, our sender encoding nothing) and the far
end decodes the pattern, also when it joins after the only parameter sets the source sends,
since they go before every IDR and its keyframe requests reach the source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from tests.h264_stream import H264Camera, H264CameraSource, H264LoopSource, encode_pattern
from tests.helpers import eventually, received, running, video_ok, video_transceiver
from vcalld.call import aiortc_hooks
from vcalld.config import VcalldConfig
from vcalld.media.sources.base import EncodedVideoSource
from vcalld.room.server import RoomServer

pytestmark = pytest.mark.slow
WIDTH, HEIGHT, FPS = 640, 480, 25


async def test_a_source_s_h264_goes_out_without_encoding(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    source = H264LoopSource(encode_pattern(WIDTH, HEIGHT, FPS, seconds=2), FPS)
    assert isinstance(source, EncodedVideoSource)
    sending = daemon_config(room_server, "dev-a")
    async with (
        running(sending, video_source=source) as alice,
        running(daemon_config(room_server, "dev-b")) as bob,
    ):
        await eventually(lambda: video_ok(received(bob, "dev-a"), (WIDTH, HEIGHT)), 20)
        seen = received(bob, "dev-a")["video"]
        assert seen["pattern_frames"] >= 0.9 * seen["stamped_frames"] > 0, seen
        ours = video_transceiver(alice)
        assert {codec.mimeType for codec in ours._codecs} <= {"video/H264", "video/rtx"}
        assert not aiortc_hooks.video_encoder_used(ours)
        # Bob's pattern comes back on the same m-line, so in H.264 too, which he encodes.
        theirs = video_transceiver(bob)
        assert theirs._codecs[0].mimeType == "video/H264"
        await eventually(lambda: video_ok(received(alice, "dev-b")), 15)
        assert aiortc_hooks.video_encoder_used(theirs)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("baseline", H264Profile.PROFILE_CONSTRAINED_BASELINE), ("high", H264Profile.PROFILE_HIGH)],
)
async def test_a_camera_s_own_h264_reaches_a_late_joiner_in_its_profile(
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
    profile: str,
    expected: H264Profile,
) -> None:
    size = (320, 240)
    camera = H264Camera(*size, FPS, profile=profile)
    async with running(daemon_config(room_server, "dev-a"), video_source=H264CameraSource(camera)):
        await asyncio.sleep(1)  # its first IDR, with the only parameter sets it sends, is gone
        assert camera.keyframes == 1
        async with running(daemon_config(room_server, "dev-b")) as bob:
            await eventually(lambda: video_ok(received(bob, "dev-a"), size), 20)
            assert camera.keyframes_requested >= 1, "the new peer asked for one"
            theirs = video_transceiver(bob)
            (negotiated,) = [c for c in theirs._codecs if c.mimeType == "video/H264"]
            level_id = str(negotiated.parameters["profile-level-id"])
            assert parse_h264_profile_level_id(level_id)[0] is expected
            # The far end's picture-loss request reaches the camera.
            await asyncio.sleep(1.1)  # past the one-a-second limit
            before = camera.keyframes_requested
            ssrc = next(iter(theirs.receiver.getSynchronizationSources())).source
            await theirs.receiver._send_rtcp_pli(ssrc)
            await eventually(lambda: camera.keyframes_requested == before + 1, 3)
            frames = received(bob, "dev-a")["video"]["frames"]
            await eventually(lambda: received(bob, "dev-a")["video"]["frames"] > frames + 25, 5)
