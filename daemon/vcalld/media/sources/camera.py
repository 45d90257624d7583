"""The camera: a V4L2 device as a video source."""

from __future__ import annotations

import asyncio

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
from vcalld.media.sources.base import Publish, ReportProblem

FORMATS: dict[str, PixelFormat | None] = {
    "auto": None,
    "mjpeg": "MJPG",
    "yuyv": "YUYV",
    "nv12": "NV12",
    "h264": "H264",
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
        )
        self._system = system or LinuxCameraSystem()
        self._capture: CameraCapture | None = None

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        # One slot: a frame the loop has not taken yet is replaced by the newer one.
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
