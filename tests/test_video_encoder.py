"""Rate control of outgoing video: each track's bitrates (from config, else by its size and
rate), H.264's bitrate changed in place with no keyframe, VP8's encoder remade only when the
target moved far and not too often, keyframes only when asked for, and the connection's
encoder in aiortc's place producing RTP payloads a decoder reads back as the pattern."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame
from av.video.frame import PictureType
from pydantic import ValidationError

from vcalld.call import aiortc_hooks
from vcalld.call.video.sender import VideoEncoder
from vcalld.config import VcalldConfig
from vcalld.media import video_codecs
from vcalld.media.layout import picture_plane
from vcalld.media.outgoing import track_encodings
from vcalld.media.pattern import PatternPainter, read_stamp
from vcalld.media.video_codecs import Bitrates, RateControlledEncoder, TrackEncoding, bitrates_for

WIDTH, HEIGHT, FPS = 640, 480, 30
painter = PatternPainter(WIDTH, HEIGHT)
noise = np.random.default_rng(7)


def frames(first: int, count: int, pict_type: PictureType = PictureType.NONE) -> list[VideoFrame]:
    """The pattern with a camera's noise (so the encoder has bits to spend), 1/90000 pts."""
    result = []
    for index in range(first, first + count):
        picture = painter.paint(index).astype(np.int16)
        picture[:HEIGHT] += noise.integers(-6, 7, (HEIGHT, WIDTH))
        frame = VideoFrame.from_ndarray(np.clip(picture, 0, 255).astype(np.uint8), "yuv420p")
        frame.pts, frame.time_base = index * 3000, Fraction(1, 90000)
        frame.pict_type = pict_type
        result.append(frame)
    return result


def sent(encoder: RateControlledEncoder, batch: list[VideoFrame]) -> tuple[float, int]:
    """kbit/s over the batch at FPS, and how many of its frames were keyframes."""
    size = keyframes = 0
    for frame in batch:
        packets = encoder.encode(frame)
        size += sum(packet.size for packet in packets)
        keyframes += any(packet.is_keyframe for packet in packets)
    return 8 * size * FPS / len(batch) / 1000, keyframes


def test_bitrates_follow_the_picture_unless_configured() -> None:
    assert bitrates_for(640, 480, 30, minimum_kbps=100) == Bitrates(100_000, 850_000, 1_700_000)
    assert bitrates_for(1280, 720, 30, minimum_kbps=100).maximum == 2_500_000
    assert bitrates_for(1920, 1080, 60, minimum_kbps=100).maximum == 5_600_000
    assert bitrates_for(3840, 2160, 30, minimum_kbps=100).maximum == 16_000_000
    assert bitrates_for(960, 540, 30, minimum_kbps=100).maximum == 1_975_000  # in between
    configured = bitrates_for(640, 480, 30, minimum_kbps=300, start_kbps=500, maximum_kbps=900)
    assert configured == Bitrates(300_000, 500_000, 900_000)
    assert configured.clamp(10_000) == 300_000 and configured.clamp(5_000_000) == 900_000
    config = VcalldConfig.model_validate(
        {"video": {"max_bitrate_kbps": 6000}, "screen_share": {"fps": 5}}
    )
    encodings = track_encodings(config)
    assert encodings["video"] == TrackEncoding(Bitrates(100_000, 3_000_000, 6_000_000), 30)
    assert encodings["screen"].fps == 5 and encodings["screen"].bitrates.maximum == 4_000_000


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ({"min_bitrate_kbps": 500, "start_bitrate_kbps": 400}, "start_bitrate_kbps is below"),
        ({"start_bitrate_kbps": 900, "max_bitrate_kbps": 800}, "start_bitrate_kbps is above"),
        ({"min_bitrate_kbps": 500, "max_bitrate_kbps": 400}, "max_bitrate_kbps is below"),
    ],
)
def test_bitrates_out_of_order_are_a_config_error(video: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VcalldConfig.model_validate({"video": video})


def test_h264_takes_a_new_bitrate_in_place_without_a_keyframe() -> None:
    encoder = RateControlledEncoder("libx264", Bitrates(100_000, 2_000_000, 2_000_000), FPS)
    high, keyframes = sent(encoder, frames(0, 60))
    assert keyframes == 1 and 1600 < high < 2400, high
    encoder.target = 500_000
    sent(encoder, frames(60, 30))  # x264's buffer drains
    low, keyframes = sent(encoder, frames(90, 60))
    assert keyframes == 0 and encoder.remade == 1
    assert 350 < low < 650, low


def test_vp8_is_remade_only_when_the_target_moved_far_and_not_too_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("vcalld.media.video_codecs.time.monotonic", lambda: clock[0])
    encoder = RateControlledEncoder("libvpx", Bitrates(100_000, 1_500_000, 3_000_000), FPS)
    high, keyframes = sent(encoder, frames(0, 30))
    assert keyframes == 1 and encoder.remade == 1
    encoder.target = 500_000
    clock[0] += video_codecs.RETUNE_SECONDS / 2  # far, but too soon after the first
    assert sent(encoder, frames(30, 10))[1] == 0 and encoder.remade == 1
    clock[0] += video_codecs.RETUNE_SECONDS
    low, keyframes = sent(encoder, frames(40, 60))
    assert encoder.remade == 2 and keyframes == 1, "remade, with the keyframe that costs"
    assert low < 0.6 * high, (low, high)
    encoder.target = 420_000  # under a quarter: kept
    clock[0] += 10
    assert sent(encoder, frames(100, 10))[1] == 0 and encoder.remade == 2


@pytest.mark.parametrize("name", ["libvpx", "libx264"])
def test_frames_marked_intra_make_no_keyframes_unless_asked(name: str) -> None:
    encoder = RateControlledEncoder(name, Bitrates(100_000, 800_000, 1_700_000), FPS)
    batch = frames(0, 20, pict_type=PictureType.I)  # as an FFmpeg decoder marks them
    keyframes = [any(p.is_keyframe for p in encoder.encode(frame)) for frame in batch[:10]]
    assert keyframes == [True] + [False] * 9
    assert any(p.is_keyframe for p in encoder.encode(batch[10], keyframe=True))
    assert not any(p.is_keyframe for p in encoder.encode(batch[11]))


@pytest.mark.parametrize(("mime", "payload_type"), [("video/VP8", 97), ("video/H264", 99)])
def test_the_connection_s_encoder_sends_payloads_that_decode_to_the_pattern(
    mime: str, payload_type: int
) -> None:
    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=payload_type)
    bitrates = Bitrates(200_000, 800_000, 1_700_000)
    encoder = VideoEncoder(mime, TrackEncoding(bitrates, FPS), aiortc_hooks._packetizer(mime))
    encoder.target_bitrate = 50_000_000  # the far end's estimate, above our maximum
    assert encoder.target_bitrate == 1_700_000
    encoder.target_bitrate = 1_000
    assert encoder.target_bitrate == 200_000
    decoder: Any = get_decoder(codec)
    stamps = []
    for frame in frames(0, 10):
        payloads, timestamp = encoder.encode(frame)
        assert timestamp == frame.pts and payloads
        data = b"".join(depayload(codec, payload) for payload in payloads)
        for picture in decoder.decode(JitterFrame(data, timestamp)):
            stamps.append(read_stamp(picture_plane(picture, 0)))
    assert stamps == list(range(10)) and encoder.encoded == 10
