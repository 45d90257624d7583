"""A connection's video encoder, in place of the one aiortc's sender makes itself.

aiortc's caps VP8 at 1.5 Mbit/s and H.264 at 3 Mbit/s (level 3.1, 30 fps assumed), remakes
itself, with a keyframe, on every bitrate change over 10%, and makes every frame a keyframe
when the frames say they are intra (`../shared/notes/aiortc.md`). This one sends within the
track's configured bitrates, changes H.264's bitrate in place and VP8's only when it moved
far, and leaves keyframes to requests. It keeps aiortc's Encoder interface (`encode`, `pack`,
`target_bitrate`, which the sender sets from the far end's REMB) and aiortc's packetisers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from av import Packet, VideoFrame
from av.frame import Frame

from vcalld.media.video_codecs import RateControlledEncoder, TrackEncoding

RTP_VIDEO_CLOCK = 90000
ENCODERS = {"video/vp8": "libvpx", "video/h264": "libx264"}


class VideoEncoder:
    def __init__(
        self, mime_type: str, encoding: TrackEncoding, packetize: Callable[[bytes], list[bytes]]
    ) -> None:
        self.rate = RateControlledEncoder(
            ENCODERS[mime_type.lower()], encoding.bitrates, encoding.fps
        )
        self._packetize = packetize
        self.encoded = 0

    @property
    def target_bitrate(self) -> int:
        return self.rate.target

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.rate.target = self.rate.bitrates.clamp(bitrate)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        packets = self.rate.encode(frame, keyframe=force_keyframe)
        self.encoded += 1
        return self._packetize(b"".join(bytes(p) for p in packets)), _rtp_timestamp(frame)

    def pack(self, packet: Packet[Any]) -> tuple[list[bytes], int]:
        """A packet encoded before the connection (by the source, or once for every peer)."""
        return self._packetize(bytes(packet)), _rtp_timestamp(packet)


def _rtp_timestamp(item: Frame | Packet[Any]) -> int:
    assert item.pts is not None and item.time_base is not None
    return int(item.pts * item.time_base * RTP_VIDEO_CLOCK)
