"""What vcalld needs of a camera: the interface that the V4L2 code (linuxpy) implements, and
that a test fake implements the same way, since no CI machine has a camera."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Protocol

# The camera formats vcalld reads, by V4L2 fourcc.
PixelFormat = Literal["MJPG", "YUYV", "NV12", "H264"]
PIXEL_FORMATS: tuple[PixelFormat, ...] = ("MJPG", "YUYV", "NV12", "H264")

BY_ID = "/dev/v4l/by-id/"
ControlValue = int | bool | str  # a menu control also takes its entry's label


class CameraUnavailableError(Exception):
    """The camera cannot be opened or started (absent, busy, refuses every format)."""


class CameraLostError(Exception):
    """The camera went away or stopped delivering while streaming."""


class ControlError(ValueError):
    """A control the camera does not offer (`field` "control"), or a value it does not take
    (`field` "value")."""

    def __init__(self, message: str, field: str = "value") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CameraInfo:
    path: str  # /dev/videoN
    card: str  # the driver's name for the device, e.g. "HD Pro Webcam C920"
    driver: str
    bus: str
    by_id: tuple[str, ...] = ()  # names under /dev/v4l/by-id that point at `path`


@dataclass(frozen=True, order=True)
class CameraMode:
    pixel_format: PixelFormat
    width: int
    height: int
    fps: float

    def __str__(self) -> str:
        return f"{self.pixel_format} {self.width}x{self.height} at {self.fps:g} fps"


@dataclass(frozen=True)
class CameraControl:
    name: str  # as v4l2-ctl names it: brightness, exposure_time_absolute, power_line_frequency
    type: Literal["integer", "boolean", "menu", "button"]  # a button acts when set; no value
    minimum: int
    maximum: int
    step: int
    default: int
    value: int
    menu: dict[int, str] = field(default_factory=dict)  # index: label, for menu controls

    def describe(self) -> str:
        if self.type == "boolean":
            return f"{self.name} (boolean) = {bool(self.value)}"
        if self.type == "button":
            return f"{self.name} (button: set to true)"
        if self.type == "menu":
            entries = ", ".join(f"{index}: {label}" for index, label in self.menu.items())
            return f"{self.name} (menu: {entries}) = {self.value}"
        return (
            f"{self.name} ({self.minimum} to {self.maximum}, step {self.step}, "
            f"default {self.default}) = {self.value}"
        )


@dataclass(frozen=True)
class RawFrame:
    """One buffer as the camera filled it."""

    data: bytes
    pixel_format: PixelFormat
    width: int
    height: int
    bytes_per_line: int  # of the first plane; 0 for compressed formats


def checked_control_value(offered: dict[str, CameraControl], name: str, value: ControlValue) -> int:
    """`value` as the integer `name` takes; `ControlError` says what the camera offers
    instead, so a wrong command is answered with what would have been right."""
    control = offered.get(name)
    if control is None:
        names = ", ".join(sorted(offered)) or "none"
        raise ControlError(f"the camera has no control {name!r} (it has: {names})", "control")
    if control.type == "boolean":
        if not isinstance(value, bool):
            raise ControlError(f"{name} takes true or false, not {value!r}")
        return int(value)
    if control.type == "button":
        if value is not True:
            raise ControlError(f"{name} is a button: it takes true, not {value!r}")
        return 1
    if control.type == "menu":
        return _menu_index(control, value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{name} takes an integer, not {value!r}")
    if not control.minimum <= value <= control.maximum:
        raise ControlError(f"{name} takes {control.minimum} to {control.maximum}, not {value}")
    if (value - control.minimum) % max(1, control.step):
        raise ControlError(f"{name} moves in steps of {control.step} from {control.minimum}")
    return value


def _menu_index(control: CameraControl, value: ControlValue) -> int:
    """A menu entry by its index or (any case) its label."""
    if isinstance(value, str):
        for index, label in control.menu.items():
            if label.casefold() == value.casefold():
                return index
    elif not isinstance(value, bool) and value in control.menu:
        return value
    entries = ", ".join(f"{index} ({label})" for index, label in control.menu.items())
    raise ControlError(f"{control.name} takes one of {entries}, not {value!r}")


class Camera(Protocol):
    """An open camera. Used by one thread at a time."""

    info: CameraInfo

    def modes(self) -> list[CameraMode]:
        """Every format, size and rate it offers, in formats vcalld reads."""

    def start(self, mode: CameraMode) -> CameraMode:
        """Stream `mode`; returns what the driver actually set."""

    def read(self, timeout: float) -> RawFrame | None:
        """The next frame, or None if none came within `timeout` seconds; raises
        `CameraLostError` when the device is gone."""

    def controls(self) -> list[CameraControl]: ...

    def set_control(self, name: str, value: ControlValue) -> int:
        """Set a control; returns the value the camera holds now. Raises `ControlError`."""

    def close(self) -> None: ...


class CameraSystem(Protocol):
    """Where cameras come from: the machine's V4L2 devices, or a test's fakes."""

    def cameras(self) -> list[CameraInfo]: ...

    def open(self, camera: CameraInfo) -> Camera:
        """Raises `CameraUnavailableError`."""


def find_camera(cameras: list[CameraInfo], selector: str) -> CameraInfo:
    """The camera `selector` names: a device path (or a symlink to one), a by-id name, or a
    card name; the first camera when empty. Raises `CameraUnavailableError` naming what is
    there, so the state tells an installer what to write instead."""
    if not cameras:
        raise CameraUnavailableError("no camera found")
    if not selector:
        return cameras[0]
    path = os.path.realpath(selector) if selector.startswith("/") else None
    name = selector.removeprefix(BY_ID)
    for camera in cameras:
        if path == camera.path or name in camera.by_id:
            return camera
    for camera in cameras:
        if selector.casefold() == camera.card.casefold():
            return camera
    present = ", ".join(f"{camera.path} ({camera.card})" for camera in cameras)
    raise CameraUnavailableError(f"no camera {selector!r} (present: {present})")
