"""The stamped test pattern as live H.264, as a camera with its own encoder makes it: SPS and
PPS once, in the first access unit; an IDR at the start and then only when asked for. And a
source looping H.264 encoded beforehand, as a plugin with an encoder of its own would send."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

from vcalld.media.h264 import NAL_PPS, NAL_SPS, annex_b, nal_type, nal_units
from vcalld.media.pattern import PatternPainter
from vcalld.media.sources.base import PublishMedia, ReportProblem

# x264 says "baseline" for any stream that needs no more (its fastest presets need no more),
# so the High profile takes a preset that uses CABAC and 8x8 transforms.
PRESETS = {"baseline": "ultrafast", "high": "veryfast"}


class H264Camera:
    def __init__(self, width: int, height: int, fps: int, profile: str = "baseline") -> None:
        self.width, self.height, self.fps = width, height, fps
        self._painter = PatternPainter(width, height)
        self._encoder = av.CodecContext.create("libx264", "w")
        assert isinstance(self._encoder, av.VideoCodecContext)
        self._encoder.width, self._encoder.height = width, height
        self._encoder.pix_fmt, self._encoder.time_base = "yuv420p", Fraction(1, fps)
        self._encoder.options = {
            "profile": profile,
            "preset": PRESETS[profile],
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": "keyint=infinite:bframes=0",
        }
        self._frames = 0
        self._keyframe_wanted = True
        self.keyframes_requested = 0
        self.keyframes = 0

    def request_keyframe(self) -> None:
        self.keyframes_requested += 1
        self._keyframe_wanted = True

    def encode(self) -> list[av.Packet[Any]]:
        """The next frame's access units."""
        frame = av.VideoFrame.from_ndarray(self._painter.paint(self._frames), format="yuv420p")
        frame.pts, frame.time_base = self._frames, Fraction(1, self.fps)
        frame.pict_type = PictureType.I if self._keyframe_wanted else PictureType.NONE
        self.keyframes += self._keyframe_wanted
        self._keyframe_wanted = False
        packets = [self._once_only_parameter_sets(p) for p in self._encoder.encode(frame)]
        self._frames += 1
        return packets

    def _once_only_parameter_sets(self, packet: av.Packet[Any]) -> av.Packet[Any]:
        if self._frames == 0:
            return packet
        units = [u for u in nal_units(bytes(packet)) if nal_type(u) not in (NAL_SPS, NAL_PPS)]
        stripped = av.Packet(annex_b(units))
        stripped.pts, stripped.time_base = packet.pts, packet.time_base
        stripped.is_keyframe = packet.is_keyframe
        return stripped


class H264CameraSource:
    """An EncodedVideoSource and KeyframeSource around an H264Camera, at its frame rate."""

    kind = "video"
    codec = "video/H264"

    def __init__(self, camera: H264Camera) -> None:
        self.camera = camera

    def request_keyframe(self) -> None:
        self.camera.request_keyframe()

    async def run(self, publish: PublishMedia, report: ReportProblem) -> None:
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while True:
            for packet in self.camera.encode():
                publish(packet)
            sent += 1
            await asyncio.sleep(start + sent / self.camera.fps - loop.time())


def encode_pattern(
    width: int, height: int, fps: int, seconds: int, bitrate: int | None = None
) -> list[av.Packet[Any]]:
    """The stamped pattern as a browser-safe H.264 stream: constrained baseline, no
    B-frames, an IDR with SPS and PPS every second; at `bitrate` (bit/s) when given."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.gop_size = fps
    if bitrate is not None:
        encoder.bit_rate = bitrate
    encoder.options = {
        "profile": "baseline",
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": f"keyint={fps}:min-keyint={fps}:repeat-headers=1:bframes=0",
    }
    painter = PatternPainter(width, height)
    packets: list[av.Packet[Any]] = []
    for index in range(seconds * fps):
        frame = av.VideoFrame.from_ndarray(painter.paint(index), format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, fps)
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    return packets


class H264LoopSource:
    """An EncodedVideoSource looping `packets` at `fps`, pts running on."""

    kind = "video"
    codec = "video/H264"

    def __init__(self, packets: list[av.Packet[Any]], fps: int) -> None:
        self._packets = packets
        self._fps = fps
        self.published = 0

    async def run(self, publish: PublishMedia, report: ReportProblem) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            for packet in self._packets:
                sent = av.Packet(bytes(packet))
                sent.pts, sent.time_base = self.published, Fraction(1, self._fps)
                sent.is_keyframe = packet.is_keyframe
                publish(sent)
                self.published += 1
                await asyncio.sleep(start + self.published / self._fps - loop.time())
