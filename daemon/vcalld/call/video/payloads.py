"""What an RTP video payload says about frame boundaries and keyframes (VP8, H.264).

The frame assembler finds most boundaries from the marker bit of the packet before; these
readings are for when that packet is gone for good: where the next decodable frame starts,
and whether it can be decoded without the frames that were lost.
"""

from __future__ import annotations

from typing import Protocol

from vcalld.media.h264 import NAL_AUD, NAL_IDR, NAL_SLICE, NAL_SPS, nal_types

STAP_A, FU_A = 24, 28  # RTP packet types (RFC 6184)
_STARTS_ACCESS_UNIT = {NAL_AUD, NAL_SPS}


class PayloadFormat(Protocol):
    def starts_frame(self, payload: bytes) -> bool:
        """The packet holds the first bytes of a frame, as WebRTC senders lay frames out
        (False when unsure)."""

    def is_keyframe(self, frame: bytes) -> bool:
        """The depayloaded frame decodes on its own."""

    def opens_keyframe(self, first_packet: bytes) -> bool:
        """The depayloaded first packet of a frame is the start of a keyframe."""


class Vp8:
    """RFC 7741: the payload descriptor's S bit with partition 0 starts a frame; the frame
    tag's P bit (first bit of the frame) is 0 on a keyframe."""

    def starts_frame(self, payload: bytes) -> bool:
        return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x0F == 0

    def is_keyframe(self, frame: bytes) -> bool:
        return bool(frame) and frame[0] & 0x01 == 0

    def opens_keyframe(self, first_packet: bytes) -> bool:
        return self.is_keyframe(first_packet)


class H264:
    """A frame (access unit) starts with an AUD or SPS, or else with a non-IDR slice
    whose first_mb_in_slice is 0 (its Exp-Golomb code is the single bit 1). An IDR slice is
    not taken for a start: WebRTC senders put the parameter sets before it, and a frame
    without them may not decode. A frame is a keyframe when it carries an IDR slice."""

    def starts_frame(self, payload: bytes) -> bool:
        if len(payload) < 2:
            return False
        packet_type = payload[0] & 0x1F
        if packet_type == FU_A:
            if payload[1] & 0x80 == 0 or len(payload) < 3:
                return False  # not the fragment that starts the NAL unit
            return _starts_access_unit(payload[1] & 0x1F, payload[2])
        if packet_type == STAP_A:
            if len(payload) < 5:
                return False
            return _starts_access_unit(payload[3] & 0x1F, payload[4])
        return _starts_access_unit(packet_type, payload[1])

    def is_keyframe(self, frame: bytes) -> bool:
        return NAL_IDR in nal_types(frame)

    def opens_keyframe(self, first_packet: bytes) -> bool:
        return not {NAL_SPS, NAL_IDR}.isdisjoint(nal_types(first_packet))


def _starts_access_unit(nal_type: int, first_byte_after_header: int) -> bool:
    if nal_type in _STARTS_ACCESS_UNIT:
        return True
    return nal_type == NAL_SLICE and first_byte_after_header & 0x80 != 0


def payload_format(mime_type: str) -> PayloadFormat | None:
    """The reader for a negotiated codec; None for a codec vcalld cannot read (then the
    assembler relies on marker bits alone)."""
    formats: dict[str, PayloadFormat] = {"video/vp8": Vp8(), "video/h264": H264()}
    return formats.get(mime_type.lower())
