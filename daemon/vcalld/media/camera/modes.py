"""Choosing the camera mode that best serves the configured size and rate."""

from __future__ import annotations

from collections.abc import Iterable

from vcalld.media.camera.device import CameraMode, CameraUnavailableError, PixelFormat

# Among modes that serve equally well: raw formats cost no decode; MJPEG is what USB cameras
# offer at high sizes and rates; H.264 only when asked for (decoding it costs the most, and
# sending it on without decoding belongs to the video engine).
AUTO_PREFERENCE: tuple[PixelFormat, ...] = ("NV12", "YUYV", "MJPG")


def choose_mode(
    modes: Iterable[CameraMode],
    width: int,
    height: int,
    fps: float,
    pixel_format: PixelFormat | None = None,
) -> CameraMode:
    """The mode closest to `width`x`height` at `fps`: first the rate (a 1080p camera that
    only reaches 5 fps in YUYV but 30 in MJPEG should stream MJPEG), then a size that covers
    the wanted one with the least to spare (frames are scaled down, never up), then the
    cheapest format. `pixel_format` restricts the choice to one format."""
    allowed = (pixel_format,) if pixel_format is not None else AUTO_PREFERENCE
    candidates = [mode for mode in modes if mode.pixel_format in allowed]
    if not candidates:
        offered = ", ".join(sorted({mode.pixel_format for mode in modes})) or "none"
        raise CameraUnavailableError(
            f"the camera offers no {' or '.join(allowed)} format (offers: {offered})"
        )

    def cost(mode: CameraMode) -> tuple[float, bool, int, int, float]:
        covers = mode.width >= width and mode.height >= height
        return (
            max(0.0, fps - mode.fps),  # frames per second short of the wanted rate
            not covers,
            abs(mode.width * mode.height - width * height),
            allowed.index(mode.pixel_format),
            mode.fps,  # no faster than needed: less bandwidth and decoding
        )

    return min(candidates, key=cost)


def fit_within(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size of the same aspect ratio that fits the box, never larger than the
    original; even sides, as 4:2:0 video needs."""
    scale = min(1.0, box_width / width, box_height / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
