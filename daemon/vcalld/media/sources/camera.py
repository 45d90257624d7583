"""The camera: a V4L2 device as a video source, decoded or (its own H.264) passed through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vcalld.config import AudioConfig, VideoConfig
from vcalld.media.camera.capture import CameraCapture, CaptureSettings
from vcalld.media.camera.device import (
    CameraSystem,
    CameraUnavailableError,
    ControlValue,
    PixelFormat,
)
from vcalld.media.camera.linux import LinuxCameraSystem
from vcalld.media.handoff import LoopHandoff
from vcalld.media.sources.base import Publish, PublishMedia, ReportProblem

FORMATS: dict[str, PixelFormat | None] = {
    "auto": None,
    "mjpeg": "MJPG",
    "yuyv": "YUYV",
    "nv12": "NV12",
    "h264": "H264",
    "h264-passthrough": "H264",
}
CONTROL_REPLY_SECONDS = 2.0  # a control request waits at most one read timeout and an ioctl


class CameraSource:
    kind = "video"

    def __init__(
        self, config: VideoConfig | AudioConfig, system: CameraSystem | None = None
    ) -> None:
        if not isinstance(config, VideoConfig):
            raise TypeError("camera is a video source")
        self._settings = CaptureSettings(
            device=config.device,
            width=config.width,
            height=config.height,
            fps=config.fps,
            pixel_format=FORMATS[config.camera_format],
            controls=dict(config.controls),
            passthrough=config.camera_passthrough,
        )
        self._system = system or LinuxCameraSystem()
        self._capture: CameraCapture | None = None

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        await self._capture_into(publish, report)

    async def _capture_into(self, publish: Callable[[Any], None], report: ReportProblem) -> None:
        """`publish` takes what the capture makes of the camera's buffers: frames, or in
        passthrough packets."""
        # One slot: a frame the loop has not taken yet is replaced by the newer one (in
        # passthrough, the decoder's reference is lost until the next IDR, which a stalled
        # loop has earned).
        frames = LoopHandoff(asyncio.get_running_loop(), publish, depth=1)
        self._capture = CameraCapture(self._system, self._settings, frames.put, report)
        try:
            await self._capture.run()
        finally:
            self._capture = None

    async def set_control(self, name: str, value: ControlValue) -> int:
        """The value the camera holds afterwards; raises `ControlError` or
        `CameraUnavailableError`."""
        if self._capture is None:
            raise CameraUnavailableError("the camera is not running")
        result = self._capture.set_control(name, value)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(result), CONTROL_REPLY_SECONDS)
        except TimeoutError:
            raise CameraUnavailableError("the camera did not answer in time") from None


class H264CameraSource(CameraSource):
    """The camera's own H.264 sent without decoding (`camera_format = "h264-passthrough"`):
    an EncodedVideoSource whose keyframes the peers' requests force."""

    codec = "video/H264"

    async def run(self, publish: PublishMedia, report: ReportProblem) -> None:  # type: ignore[override]
        await self._capture_into(publish, report)

    def request_keyframe(self) -> None:
        if self._capture is not None:
            self._capture.request_keyframe()


class _CameraEntryPoint:
    """The `camera` entry point: passthrough or decoding, as `camera_format` says (an
    object, not a function, for the `kind` that config validation reads off a factory)."""

    kind = "video"

    def __call__(
        self, config: VideoConfig | AudioConfig, system: CameraSystem | None = None
    ) -> CameraSource:
        passthrough = isinstance(config, VideoConfig) and config.camera_passthrough
        return (H264CameraSource if passthrough else CameraSource)(config, system)


camera_source = _CameraEntryPoint()
