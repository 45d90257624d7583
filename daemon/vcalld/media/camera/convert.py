"""Camera buffers to frames the encoders take: decoded (MJPEG, H.264) or wrapped (YUYV, NV12),
scaled to fit the configured size and turned into yuv420p in one pass; or, in passthrough,
H.264 buffers to the packets that are sent as they are."""

from __future__ import annotations

import logging
from typing import Any, Literal

import av
import numpy as np
from av import VideoFrame
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from vcalld.media.camera.device import CameraMode, RawFrame
from vcalld.media.camera.modes import fit_within
from vcalld.media.h264 import NAL_IDR, nal_types

log = logging.getLogger(__name__)

DECODERS: dict[str, Literal["mjpeg", "h264"]] = {"MJPG": "mjpeg", "H264": "h264"}


class FrameConverter:
    """For one camera mode; used by the capture thread only (FFmpeg releases the GIL while
    it decodes and scales)."""

    def __init__(self, mode: CameraMode, box_width: int, box_height: int) -> None:
        self.width, self.height = fit_within(mode.width, mode.height, box_width, box_height)
        codec = DECODERS.get(mode.pixel_format)
        self._decoder = av.CodecContext.create(codec, "r") if codec is not None else None
        # Kept: a frame's own reformat() builds a new scaler for every decoded frame.
        self._scaler = VideoReformatter()
        self.corrupt = 0  # compressed frames the decoder refused, each skipped

    def convert(self, raw: RawFrame) -> VideoFrame | None:
        """None when a compressed frame does not decode (a torn USB transfer): the next one
        will. The frame carries no `pict_type`: a decoder marks its output as intra-coded,
        and the VP8 encoder would pass that on and make every frame a keyframe."""
        frame = self._decode(raw) if self._decoder is not None else _wrap(raw)
        if frame is None:
            return None
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, "yuv420p"):
            frame = self._scaler.reformat(
                frame, width=self.width, height=self.height, format="yuv420p"
            )
        frame.pict_type = PictureType.NONE
        return frame

    def _decode(self, raw: RawFrame) -> VideoFrame | None:
        assert self._decoder is not None
        try:
            frames = self._decoder.decode(encoded_packet(raw))
        except av.error.InvalidDataError:
            frames = []
        if not frames:
            self.corrupt += 1
            if self.corrupt in (1, 10, 100) or self.corrupt % 1000 == 0:
                log.info("camera: %d frames did not decode, skipped", self.corrupt)
            return None
        return frames[-1]


class H264Packets:
    """Passthrough: the camera's size, as nothing scales it; and from its first IDR on,
    since a peer cannot decode the pictures that refer to earlier ones."""

    def __init__(self, mode: CameraMode) -> None:
        self.width, self.height = mode.width, mode.height
        self._at_idr = False

    def convert(self, raw: RawFrame) -> av.Packet[Any] | None:
        keyframe = NAL_IDR in nal_types(raw.data)
        self._at_idr = self._at_idr or keyframe
        if not self._at_idr:
            return None
        packet = encoded_packet(raw)
        packet.is_keyframe = keyframe
        return packet


def encoded_packet(raw: RawFrame) -> av.Packet[Any]:
    """A compressed camera buffer as a packet, as a decoder or a passthrough sender takes it."""
    return av.Packet(raw.data)


def _wrap(raw: RawFrame) -> VideoFrame:
    """YUYV and NV12 buffers as frames; rows may be padded past the picture (`bytes_per_line`)."""
    data = np.frombuffer(raw.data, np.uint8)
    if raw.pixel_format == "YUYV":
        rows = data[: raw.bytes_per_line * raw.height].reshape(raw.height, raw.bytes_per_line)
        picture = rows[:, : raw.width * 2].reshape(raw.height, raw.width, 2)
        return VideoFrame.from_ndarray(picture, format="yuyv422")
    # NV12: the full-resolution luma plane, then interleaved chroma at half height.
    rows = data[: raw.bytes_per_line * raw.height * 3 // 2].reshape(-1, raw.bytes_per_line)
    return VideoFrame.from_ndarray(np.ascontiguousarray(rows[:, : raw.width]), format="nv12")
