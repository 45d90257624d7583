"""Video encoders for a call, and how their bitrate follows the network.

Both are PyAV contexts set for real time: nothing held back, keyframes only when asked for,
constant bitrate. libx264 (with VBV) takes a new bitrate in place, with no keyframe; libvpx
ignores one on an open encoder, so VP8 is remade, which costs a keyframe, and only when the
bitrate moved far (RETUNE_SHARE) and not too often (RETUNE_SECONDS).
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av import VideoFrame
from av.video.frame import PictureType

VIDEO_CLOCK = Fraction(1, 90000)
RETUNE_SHARE = 0.25  # VP8's bitrate is changed (the encoder remade) past this difference...
RETUNE_SECONDS = 2.0  # ...at most this often, for it costs a keyframe
IN_PLACE_SHARE = 0.05  # smaller moves of an H.264 target are not worth a reconfiguration


@dataclass(frozen=True)
class Bitrates:
    """What one outgoing video track may send, in bit/s: it starts at `start`, and follows
    the far end's estimate within [minimum, maximum]."""

    minimum: int
    start: int
    maximum: int

    def clamp(self, bitrate: int) -> int:
        return max(self.minimum, min(self.maximum, bitrate))


@dataclass(frozen=True)
class TrackEncoding:
    """How one outgoing video track is encoded for a connection."""

    bitrates: Bitrates
    fps: int


# What browsers allow a camera track at 30 fps, by pixels (libwebrtc's own table, roughly);
# between two sizes, in proportion; at 60 fps, 40% more.
MAX_KBPS_AT_30_FPS = ((320 * 240, 600), (640 * 480, 1700), (1280 * 720, 2500), (1920 * 1080, 4000))
HIGH_RATE_FACTOR = 1.4


def bitrates_for(
    width: int,
    height: int,
    fps: int,
    *,
    minimum_kbps: int,
    start_kbps: int | None = None,
    maximum_kbps: int | None = None,
) -> Bitrates:
    """A track's bitrates: what config says, the rest by the picture's size and rate."""
    if maximum_kbps is None:
        maximum_kbps = max(minimum_kbps, round(_browser_maximum_kbps(width * height, fps)))
    if start_kbps is None:
        start_kbps = max(minimum_kbps, maximum_kbps // 2)
    return Bitrates(1000 * minimum_kbps, 1000 * start_kbps, 1000 * maximum_kbps)


def _browser_maximum_kbps(pixels: int, fps: int) -> float:
    table = MAX_KBPS_AT_30_FPS
    if pixels <= table[0][0]:
        kbps = float(table[0][1])
    elif pixels >= table[-1][0]:
        kbps = table[-1][1] * pixels / table[-1][0]
    else:
        (low, low_kbps), (high, high_kbps) = next(
            (a, b) for a, b in itertools.pairwise(table) if a[0] <= pixels <= b[0]
        )
        kbps = low_kbps + (high_kbps - low_kbps) * (pixels - low) / (high - low)
    return kbps * (HIGH_RATE_FACTOR if fps > 30 else 1.0)


class RateControlledEncoder:
    """One PyAV encoder ("libvpx" or "libx264") whose size and bitrate follow its input and
    `target`; `encode` returns the access units of one frame. `fps` is the nominal rate,
    which x264's rate control divides the bitrate by (the frames' own pts are in 1/90000)."""

    def __init__(self, name: str, bitrates: Bitrates, fps: int) -> None:
        self.name = name
        self.bitrates = bitrates
        self.fps = fps
        self.target = bitrates.start
        self.context: Any = None
        self._bitrate = bitrates.start
        self._retuned_at = 0.0
        self.keyframes = 0
        self.remade = 0  # encoders made, the first one included

    def encode(self, frame: VideoFrame, keyframe: bool = False) -> list[av.Packet[Any]]:
        keyframe |= self._follow(frame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        # Frames from an FFmpeg decoder say they are intra; libvpx would obey every one.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        packets: list[av.Packet[Any]] = list(self.context.encode(frame))
        self.keyframes += any(packet.is_keyframe for packet in packets)
        return packets

    def _follow(self, frame: VideoFrame) -> bool:
        """Makes or retunes the encoder for `frame` and the target; True when it is new."""
        wanted = self.bitrates.clamp(self.target)
        context, now = self.context, time.monotonic()
        resized = context is None or (context.width, context.height) != (frame.width, frame.height)
        moved = abs(wanted - self._bitrate) / self._bitrate
        if not resized and self.name == "libx264" and moved > IN_PLACE_SHARE:
            self._bitrate = context.bit_rate = wanted  # x264 reconfigures at the next frame
            return False
        if not resized and not (moved > RETUNE_SHARE and now - self._retuned_at >= RETUNE_SECONDS):
            return False
        self._bitrate, self._retuned_at = wanted, now
        self.context = open_encoder(
            self.name, frame.width, frame.height, self.fps, wanted, self.bitrates
        )
        self.remade += 1
        return True


def _threads(pixels: int) -> int:
    """One thread up to 640x480 or on two cores: several encoders (one per peer, besides the
    decoders) share the cores: with a second thread each, a call between two daemons on two
    cores fell from 30 to 22-25 fps. Larger pictures on more cores get up to four."""
    cores = multiprocessing.cpu_count()
    return 1 if cores <= 2 or pixels <= 640 * 480 else min(4, cores // 2)


def open_encoder(  # noqa: PLR0917 - the picture's size and rate, then what to send
    name: str, width: int, height: int, fps: int, bitrate: int, bitrates: Bitrates
) -> Any:
    context: Any = av.CodecContext.create(name, "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base, context.framerate, context.bit_rate = VIDEO_CLOCK, Fraction(fps), bitrate
    context.gop_size = 100_000  # keyframes when asked for, not by the clock
    context.thread_count = _threads(width * height)
    if name == "libvpx":
        context.qmin, context.qmax = 2, 56
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
    else:
        # Constrained baseline (every browser decodes it), no B-frames; the VBV ceiling is
        # the track's maximum, so a target that moves stays in place.
        context.options = {
            "profile": "baseline",
            "preset": "ultrafast",
            "tune": "zerolatency",
            "maxrate": str(bitrates.maximum),
            "bufsize": str(bitrates.maximum),
            "x264-params": "repeat-headers=1",
        }
    return context
