"""Encode once for every peer (`[video] encode_once`): aiortc gives each peer connection an
encoder of its own, so a mesh of seven encodes every frame six times. Here one VP8 encoder
takes the outgoing frames, in a thread, and every connection's sender only packetises its
packets. Any peer's keyframe request (PLI, FIR), at most one a second, and the lowest of the
peers' bandwidth estimates (within the track's bitrates) reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from av import Packet, VideoFrame

from vcalld.call import aiortc_hooks
from vcalld.media.keyframes import KeyframeRequests
from vcalld.media.video_codecs import VIDEO_CLOCK, RateControlledEncoder, TrackEncoding
from vcalld.media.waiting import Waiting

CODEC = "video/VP8"


class SharedVideoEncoder:
    codec = CODEC

    def __init__(self, publish: Callable[[Packet[Any]], None], encoding: TrackEncoding) -> None:
        self._publish = publish
        self._frames: Waiting[VideoFrame] = Waiting(depth=1)  # a slow encoder drops frames
        self._keyframe_requests = KeyframeRequests(self._want_keyframe)
        self._rate = RateControlledEncoder("libvpx", encoding.bitrates, encoding.fps)
        self._keyframe_wanted = True
        self.encoded = 0  # frames encoded, whatever the number of peers

    @property
    def keyframes(self) -> int:
        return self._rate.keyframes

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
        self._rate.target = self._lowest_estimate()
        keyframe, self._keyframe_wanted = self._keyframe_wanted, False
        packets = self._rate.encode(frame, keyframe)
        for packet in packets:
            packet.pts, packet.time_base = frame.pts, frame.time_base or VIDEO_CLOCK
        self.encoded += 1
        return packets

    def _lowest_estimate(self) -> int:
        senders = list(self._keyframe_requests.senders)
        estimates = [aiortc_hooks.estimated_bitrate(sender) for sender in senders]
        known = [estimate for estimate in estimates if estimate is not None]
        return min(known) if known else self._rate.target
