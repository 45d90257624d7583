"""The stamped test pattern as live H.264, as a camera with its own encoder makes it: SPS and
PPS once, in the first access unit; an IDR at the start and then only when asked for."""

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
