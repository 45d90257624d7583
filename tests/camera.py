"""A fake V4L2 camera behind the interface the linuxpy code implements (`vcalld.media.camera.
device`): no CI machine has a camera. It streams the project's stamped test pattern in the
format asked for, as a real camera's buffers would hold it (padded rows, JPEG, H.264), at the
mode's rate; it can be unplugged, plugged back in and made to stall. Its H.264, like a camera
encoder's, has a long GOP; one with `keyframe_button()` makes an IDR when that is pushed."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from av.video.frame import PictureType

from vcalld.media.camera.device import (
    CameraControl,
    CameraInfo,
    CameraLostError,
    CameraMode,
    CameraUnavailableError,
    ControlValue,
    RawFrame,
    checked_control_value,
)
from vcalld.media.pattern import PatternPainter

ENCODERS: dict[str, Literal["mjpeg", "libx264"]] = {"MJPG": "mjpeg", "H264": "libx264"}
ROW_PADDING = 64  # bytes past each row, as drivers that align lines add
BRIGHTNESS_DEFAULT = 128
H264_GOP = 300  # frames between the encoder's own IDRs: 10 s at 30 fps, as cameras do


def webcam_modes() -> list[CameraMode]:
    """What a typical UVC webcam offers: YUYV only at low sizes and rates, MJPEG up to
    1080p60, H.264 too."""
    modes = [CameraMode("YUYV", 640, 480, 30), CameraMode("YUYV", 1280, 720, 10)]
    modes += [CameraMode("YUYV", 1920, 1080, 5)]
    for width, height in ((640, 480), (1280, 720), (1920, 1080)):
        modes += [CameraMode("MJPG", width, height, fps) for fps in (30, 60)]
        modes.append(CameraMode("H264", width, height, 30))
    modes += [CameraMode("NV12", 320, 240, 30)]
    return modes


def standard_controls() -> dict[str, CameraControl]:
    return {
        "brightness": CameraControl(
            "brightness", "integer", 0, 255, 1, BRIGHTNESS_DEFAULT, BRIGHTNESS_DEFAULT
        ),
        "zoom_absolute": CameraControl("zoom_absolute", "integer", 100, 500, 10, 100, 100),
        "focus_automatic_continuous": CameraControl(
            "focus_automatic_continuous", "boolean", 0, 1, 1, 1, 1
        ),
        "power_line_frequency": CameraControl(
            "power_line_frequency",
            "menu",
            0,
            2,
            1,
            2,
            2,
            {0: "Disabled", 1: "50 Hz", 2: "60 Hz"},
        ),
    }


def keyframe_button() -> dict[str, CameraControl]:
    """V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, as a camera with its own H.264 encoder has it."""
    button = CameraControl("force_key_frame", "button", 0, 0, 0, 0, 0)
    return {**standard_controls(), button.name: button}


@dataclass
class FakeDevice:
    """The hardware: present or not, with its modes and controls."""

    info: CameraInfo
    modes: list[CameraMode] = field(default_factory=webcam_modes)
    controls: dict[str, CameraControl] = field(default_factory=standard_controls)
    plugged: bool = True
    delivering: bool = True  # False: streams nothing, as a wedged USB camera does
    opened: int = 0
    buttons_pushed: list[str] = field(default_factory=list)

    def unplug(self) -> None:
        self.plugged = False

    def plug(self) -> None:
        """Back with its controls at their defaults, as a camera is after a power cycle."""
        self.controls = {
            name: dataclasses.replace(control, value=control.default)
            for name, control in self.controls.items()
        }
        self.plugged = True


class FakeCameraSystem:
    def __init__(self, *devices: FakeDevice) -> None:
        self.devices = list(devices)

    def cameras(self) -> list[CameraInfo]:
        return [device.info for device in self.devices if device.plugged]

    def open(self, camera: CameraInfo) -> FakeCamera:
        device = next(device for device in self.devices if device.info == camera)
        if not device.plugged:
            raise CameraUnavailableError(f"cannot open {camera.path}: No such device")
        device.opened += 1
        return FakeCamera(device)


def fake_camera(card: str = "Fake Webcam", path: str = "/dev/video0") -> FakeDevice:
    return FakeDevice(
        CameraInfo(path, card, "uvcvideo", "usb-0000:00:14.0-1", (f"usb-{card}-video-index0",))
    )


class FakeCamera:
    def __init__(self, device: FakeDevice) -> None:
        self.info = device.info
        self._device = device
        self._mode: CameraMode | None = None
        self._painter: PatternPainter | None = None
        self._encoder: av.VideoCodecContext | None = None
        self._started = 0.0
        self._index = 0
        self._idr_wanted = False

    def modes(self) -> list[CameraMode]:
        return list(self._device.modes)

    def start(self, mode: CameraMode) -> CameraMode:
        if mode not in self._device.modes:
            raise CameraUnavailableError(f"cannot start {mode}: Invalid argument")
        self._mode = mode
        self._painter = PatternPainter(mode.width, mode.height)
        codec = ENCODERS.get(mode.pixel_format)
        if codec is not None:
            encoder = av.VideoCodecContext.create(codec, "w")
            encoder.width, encoder.height = mode.width, mode.height
            encoder.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            encoder.time_base = Fraction(1, int(mode.fps))
            if codec == "libx264":
                encoder.gop_size = H264_GOP
                encoder.options = {"tune": "zerolatency", "preset": "ultrafast", "forced-idr": "1"}
            self._encoder = encoder
        self._started = time.monotonic()
        return mode

    def read(self, timeout: float) -> RawFrame | None:
        assert self._mode is not None
        deadline = self._started + self._index / self._mode.fps
        wait = deadline - time.monotonic()
        if wait > timeout or not self._device.delivering:
            time.sleep(timeout)
            self._check_plugged()
            return None
        time.sleep(max(0.0, wait))
        self._check_plugged()
        frame = self._paint(self._index)
        self._index += 1
        return frame

    def controls(self) -> list[CameraControl]:
        return list(self._device.controls.values())

    def set_control(self, name: str, value: ControlValue) -> int:
        checked = checked_control_value(self._device.controls, name, value)
        if self._device.controls[name].type == "button":
            self._device.buttons_pushed.append(name)
            self._idr_wanted |= name == "force_key_frame"
            return checked
        self._device.controls[name] = dataclasses.replace(
            self._device.controls[name], value=checked
        )
        return checked

    def close(self) -> None:
        self._mode = None

    def _check_plugged(self) -> None:
        if not self._device.plugged:
            raise CameraLostError("No such device")

    def _paint(self, index: int) -> RawFrame:
        """The pattern, its luma offset by brightness as a sensor's gain would."""
        assert self._mode is not None and self._painter is not None
        mode = self._mode
        planes = self._painter.paint(index).copy()
        offset = self._device.controls["brightness"].value - BRIGHTNESS_DEFAULT
        luma = planes[: mode.height].astype(np.int16) + offset
        planes[: mode.height] = np.clip(luma, 0, 255).astype(np.uint8)
        y = planes[: mode.height]
        chroma = planes[mode.height :].reshape(2, mode.height // 2, mode.width // 2)
        u, v = chroma[0], chroma[1]
        if mode.pixel_format == "YUYV":
            return _padded(_yuyv(y, u, v), mode)
        if mode.pixel_format == "NV12":
            interleaved = np.stack([u, v], axis=-1).reshape(mode.height // 2, mode.width)
            return _padded(np.concatenate([y, interleaved]), mode)
        return self._encoded(planes, index)

    def _encoded(self, planes: np.ndarray, index: int) -> RawFrame:
        assert self._mode is not None and self._encoder is not None
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        if self._encoder.pix_fmt == "yuvj420p":  # JPEG is full range, as cameras send it
            frame = frame.reformat(format="yuvj420p")
        frame.pts = index
        if self._idr_wanted:
            frame.pict_type = PictureType.I
            self._idr_wanted = False
        data = b"".join(bytes(packet) for packet in self._encoder.encode(frame))
        return RawFrame(data, self._mode.pixel_format, self._mode.width, self._mode.height, 0)


def _yuyv(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(u.shape[0]), 2)  # each chroma row serves two lines
    packed = np.stack([y[:, 0::2], u[rows], y[:, 1::2], v[rows]], axis=-1)
    return packed.reshape(y.shape[0], -1)


def _padded(rows: np.ndarray, mode: CameraMode) -> RawFrame:
    padded = np.zeros((rows.shape[0], rows.shape[1] + ROW_PADDING), np.uint8)
    padded[:, : rows.shape[1]] = rows
    line = padded.shape[1]
    return RawFrame(padded.tobytes(), mode.pixel_format, mode.width, mode.height, line)
