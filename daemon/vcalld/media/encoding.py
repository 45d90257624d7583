"""Encode once for every peer (`[video] encode_once`): aiortc gives each peer connection an
encoder of its own, so a mesh of seven encodes every frame six times. Here one VP8 encoder
takes the outgoing frames, in a thread, and every connection's sender only packetises its
packets. Any peer's keyframe request (PLI, FIR), at most one a second, and the lowest of the
peers' bandwidth estimates reach it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCRtpSender
from av import Packet, VideoFrame
from av.video.frame import PictureType

from vcalld.call import aiortc_hooks
from vcalld.media.keyframes import KeyframeRequests
from vcalld.media.waiting import Waiting

log = logging.getLogger(__name__)

CODEC = "video/VP8"
START_BITRATE = 500_000  # aiortc's own start, until the peers' estimates say otherwise
MIN_BITRATE, MAX_BITRATE = 100_000, 1_500_000
RETUNE_SHARE = 0.25  # the bitrate is changed (the encoder remade) past this difference...
RETUNE_SECONDS = 2.0  # ...at most this often, for it costs a keyframe
VIDEO_CLOCK = Fraction(1, 90000)


class SharedVideoEncoder:
    codec = CODEC

    def __init__(self, publish: Callable[[Packet[Any]], None]) -> None:
        self._publish = publish
        self._frames: Waiting[VideoFrame] = Waiting(depth=1)  # a slow encoder drops frames
        self._keyframe_requests = KeyframeRequests(self._want_keyframe)
        self._context: Any = None
        self._bitrate = START_BITRATE
        self._retuned_at = 0.0
        self._keyframe_wanted = True
        self.encoded = 0  # frames encoded, whatever the number of peers
        self.keyframes = 0

    def add_sender(self, sender: RTCRtpSender) -> None:
        """A connection's video sender: its keyframe requests and bandwidth estimate count,
        and it starts on a keyframe."""
        self._keyframe_requests.add_sender(sender)

    def _want_keyframe(self) -> None:
        self._keyframe_wanted = True

    def submit(self, frame: VideoFrame) -> None:
        self._frames.put(frame)

    async def run(self) -> None:
        async for frame in self._frames.taken():
            for packet in await asyncio.to_thread(self._encode, frame):
                self._publish(packet)

    def _encode(self, frame: VideoFrame) -> list[Packet[Any]]:
        """The encoder's thread; the frame's pts are in 1/90000 s (the outgoing timeline's)."""
        self._retune(frame)
        keyframe = self._keyframe_wanted
        if keyframe:
            self._keyframe_wanted = False
            self.keyframes += 1
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        # Frames from an FFmpeg decoder say they are intra; libvpx would obey every one.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        packets: list[Packet[Any]] = list(self._context.encode(frame))
        for packet in packets:
            packet.pts, packet.time_base = frame.pts, frame.time_base or VIDEO_CLOCK
        self.encoded += 1
        return packets

    def _retune(self, frame: VideoFrame) -> None:
        """A new encoder for a new size, or for the peers' bandwidth when it moved far."""
        wanted = self._wanted_bitrate()
        context = self._context
        now = time.monotonic()
        resized = context is None or (context.width, context.height) != (frame.width, frame.height)
        moved = abs(wanted - self._bitrate) > RETUNE_SHARE * self._bitrate
        if not resized and not (moved and now - self._retuned_at >= RETUNE_SECONDS):
            return
        self._bitrate, self._retuned_at = wanted, now
        self._context = _vp8_encoder(frame.width, frame.height, wanted)
        self._keyframe_wanted = True  # a new encoder starts with one anyway

    def _wanted_bitrate(self) -> int:
        senders = list(self._keyframe_requests.senders)
        estimates = [aiortc_hooks.estimated_bitrate(sender) for sender in senders]
        known = [estimate for estimate in estimates if estimate is not None]
        lowest = min(known) if known else self._bitrate
        return max(MIN_BITRATE, min(MAX_BITRATE, lowest))


def _vp8_encoder(width: int, height: int, bitrate: int) -> Any:
    """libvpx for a call: real time, no frames held back, constant bitrate, keyframes only
    when asked for."""
    context = av.CodecContext.create("libvpx", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base, context.bit_rate = VIDEO_CLOCK, bitrate
    context.gop_size = 100_000
    context.qmin, context.qmax = 2, 56
    context.thread_count = min(4, multiprocessing.cpu_count()) if width * height > 320 * 240 else 1
    context.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "static-thresh": "1",
    }
    return context
