"""The machine's V4L2 cameras, through linuxpy."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from linuxpy.video.device import (
    BufferType,
    Capability,
    ControlType,
    Device,
    FrameIntervalType,
    FrameSizeType,
    PixelFormat,
    VideoCapture,
    human_pixel_format,
    iter_video_files,
)

from vcalld.media.camera.device import (
    PIXEL_FORMATS,
    CameraControl,
    CameraInfo,
    CameraLostError,
    CameraMode,
    CameraUnavailableError,
    ControlError,
    ControlValue,
    RawFrame,
    checked_control_value,
)
from vcalld.media.camera.device import PixelFormat as Fourcc

BUFFERS = 4  # enough for the driver to fill while the thread decodes, no more latency
# Sizes tried on cameras that offer a continuous or stepwise range instead of a list.
COMMON_SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080), (3840, 2160))
COMMON_RATES = (15, 30, 60)
CONTROL_TYPES = {
    ControlType.INTEGER: "integer",
    ControlType.BOOLEAN: "boolean",
    ControlType.MENU: "menu",
    ControlType.INTEGER_MENU: "menu",
    ControlType.BUTTON: "button",
}


class LinuxCameraSystem:
    def __init__(self, dev: Path = Path("/dev")) -> None:
        self._dev = dev

    def cameras(self) -> list[CameraInfo]:
        aliases: dict[str, list[str]] = {}
        by_id = self._dev / "v4l" / "by-id"
        if by_id.is_dir():
            for link in sorted(by_id.iterdir()):
                aliases.setdefault(os.path.realpath(link), []).append(link.name)
        found = []
        for path in sorted(iter_video_files(self._dev), key=_device_number):
            try:
                with Device(path) as device:
                    info = device.info
                    if Capability.VIDEO_CAPTURE not in info.device_capabilities:
                        continue  # an output, metadata or radio node
                    found.append(
                        CameraInfo(
                            path=str(path),
                            card=info.card,
                            driver=info.driver,
                            bus=info.bus_info,
                            by_id=tuple(aliases.get(str(path), ())),
                        )
                    )
            except OSError:
                continue  # going away: the node lingers a moment after an unplug
        return found

    def open(self, camera: CameraInfo) -> LinuxCamera:
        try:
            device = Device(camera.path)
            device.open()
        except OSError as error:
            raise CameraUnavailableError(f"cannot open {camera.path}: {error.strerror}") from None
        return LinuxCamera(camera, device)


class LinuxCamera:
    def __init__(self, info: CameraInfo, device: Device) -> None:
        self.info = info
        self._device = device
        self._capture: VideoCapture | None = None
        self._format: Any = None

    def modes(self) -> list[CameraMode]:
        with _errors_as(CameraUnavailableError):
            return self._modes()

    def _modes(self) -> list[CameraMode]:
        modes = []
        for image_format in self._device.info.buffer_formats(BufferType.VIDEO_CAPTURE):
            fourcc = _fourcc(image_format.pixel_format)
            if fourcc is None:
                continue
            for size in self._device.info.format_frame_sizes(image_format.pixel_format):
                for width, height in _sizes(size):
                    intervals = self._device.info.fps_intervals(
                        image_format.pixel_format, width, height
                    )
                    modes += [
                        CameraMode(fourcc, width, height, float(fps)) for fps in _rates(intervals)
                    ]
        return modes

    def start(self, mode: CameraMode) -> CameraMode:
        try:
            self._device.set_format(
                BufferType.VIDEO_CAPTURE, mode.width, mode.height, mode.pixel_format
            )
            self._device.set_fps(BufferType.VIDEO_CAPTURE, mode.fps)
            self._format = self._device.get_format(BufferType.VIDEO_CAPTURE)
            fps = float(self._device.get_fps(BufferType.VIDEO_CAPTURE))
            self._capture = VideoCapture(self._device, size=BUFFERS)
            self._capture.open()
        except OSError as error:
            raise CameraUnavailableError(f"cannot start {mode}: {error.strerror}") from None
        fourcc = _fourcc(self._format.pixel_format) or mode.pixel_format
        return CameraMode(fourcc, self._format.width, self._format.height, fps)

    def read(self, timeout: float) -> RawFrame | None:
        assert self._capture is not None and self._capture.buffer is not None
        with _errors_as(CameraLostError):
            ready, _, _ = select.select([self._device], [], [], timeout)
            if not ready:
                return None
            data, _ = self._capture.buffer.raw_grab()
        fourcc = _fourcc(self._format.pixel_format)
        assert fourcc is not None
        return RawFrame(
            bytes(data),
            fourcc,
            self._format.width,
            self._format.height,
            0 if fourcc in ("MJPG", "H264") else self._format.bytes_per_line,
        )

    def controls(self) -> list[CameraControl]:
        with _errors_as(CameraLostError):
            return self._controls()

    def _controls(self) -> list[CameraControl]:
        controls = []
        for control in self._device.controls.values():
            kind = CONTROL_TYPES.get(control.type)
            if kind is None or control.is_flagged_disabled or control.is_flagged_read_only:
                continue
            if kind == "button":  # write-only: it has no value to read
                controls.append(CameraControl(control.config_name, "button", 0, 0, 0, 0, 0))
                continue
            controls.append(
                CameraControl(
                    name=control.config_name,
                    type=kind,  # type: ignore[arg-type]
                    minimum=control.minimum,
                    maximum=control.maximum,
                    step=control.step,
                    default=int(control.default),
                    value=int(control.value),
                    menu={int(index): str(label) for index, label in control.data.items()}
                    if kind == "menu"
                    else {},
                )
            )
        return controls

    def set_control(self, name: str, value: ControlValue) -> int:
        offered = {control.name: control for control in self.controls()}
        checked = checked_control_value(offered, name, value)
        control = self._device.controls[name]
        try:
            if offered[name].type == "button":
                control.push()
                return checked
            control.value = checked
            return int(control.value)
        except OSError as error:
            raise ControlError(f"the camera refused {value!r}: {error.strerror}") from None

    def close(self) -> None:
        """Every step even when the one before fails, as they do on a device that is gone:
        a buffer left mapped would hold the driver (its module could not even be unloaded)."""
        capture, self._capture = self._capture, None
        if capture is not None and capture.buffer is not None:
            with suppress(OSError):
                capture.stream_off()
            with suppress(OSError):
                capture.disarm()  # unmaps the buffers, then asks the driver to free them
        self._device.close()


@contextmanager
def _errors_as(kind: type[Exception]) -> Iterator[None]:
    """The device's OS errors as the camera interface's: a camera that fails an ioctl while
    it is opened is unavailable, one that fails while streaming is lost; both are reopened."""
    try:
        yield
    except OSError as error:
        raise kind(error.strerror or str(error)) from None


def _fourcc(pixel_format: PixelFormat) -> Fourcc | None:
    code = human_pixel_format(int(pixel_format))
    return next((known for known in PIXEL_FORMATS if known == code), None)


def _sizes(size: Any) -> list[tuple[int, int]]:
    if size.type == FrameSizeType.DISCRETE:
        return [(size.info.width, size.info.height)]
    info = size.info
    inside = [
        (width, height)
        for width, height in COMMON_SIZES
        if info.min_width <= width <= info.max_width
        and info.min_height <= height <= info.max_height
        and (width - info.min_width) % max(1, info.step_width) == 0
        and (height - info.min_height) % max(1, info.step_height) == 0
    ]
    return inside or [(info.max_width, info.max_height)]


def _rates(intervals: list[Any]) -> list[float]:
    rates: set[float] = set()
    for interval in intervals:
        if interval.type == FrameIntervalType.DISCRETE:
            rates.add(float(interval.max_fps))
        else:
            low, high = float(interval.min_fps), float(interval.max_fps)
            rates.update(rate for rate in COMMON_RATES if low <= rate <= high)
            rates.add(high)
    return sorted(rate for rate in rates if rate > 0) or [30.0]


def _device_number(path: Path) -> int:
    digits = path.name.removeprefix("video")
    return int(digits) if digits.isdigit() else 1 << 30
