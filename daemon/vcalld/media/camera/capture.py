"""Camera capture in one thread per device: frames stamped on one clock, black frames while the
camera is missing (the outgoing track must never end), and controls set between frames. In
passthrough, the camera's H.264 goes out as packets, and keyframes come on request."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from fractions import Fraction

from vcalld.media.camera.convert import FrameConverter, H264Packets
from vcalld.media.camera.device import (
    Camera,
    CameraLostError,
    CameraMode,
    CameraSystem,
    CameraUnavailableError,
    ControlError,
    ControlValue,
    PixelFormat,
    find_camera,
)
from vcalld.media.camera.modes import choose_mode
from vcalld.media.device_thread import DeviceThread
from vcalld.media.frames import black_video
from vcalld.media.sources.base import Media, ReportProblem

VIDEO_CLOCK = 90000
READ_TIMEOUT_SECONDS = 0.25  # how long a control request or a stop waits at most
STALL_SECONDS = 2.0  # a camera silent this long is reopened
# While the camera is missing: enough frames to keep the sender and the peers' decoders going,
# at a fraction of the encoding cost of the full rate.
FILLER_FPS = 5
# The V4L2 control (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME) by which a camera that encodes H.264
# makes its next frame an IDR.
FORCE_KEY_FRAME = "force_key_frame"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureSettings:
    device: str  # path, by-id name or card name; the first camera when empty
    width: int
    height: int
    fps: int
    pixel_format: PixelFormat | None = None  # None: the best the camera offers
    controls: dict[str, ControlValue] = field(default_factory=dict)
    # The camera's H.264 published as packets at the camera's size, not decoded (and, while
    # the camera is missing, nothing: a black frame would need an encoder of ours).
    passthrough: bool = False


@dataclass
class _Streaming:
    camera: Camera
    mode: CameraMode
    converter: FrameConverter | H264Packets


@dataclass(frozen=True)
class _ControlRequest:
    name: str
    value: ControlValue
    result: Future[int]


class CameraCapture(DeviceThread[_Streaming]):
    role = "camera"
    fine_when_open = False
    # Lost while it is being opened and set up: unavailable, and tried again.
    unavailable_errors = (CameraUnavailableError, CameraLostError)
    lost_errors = (CameraLostError,)

    def __init__(
        self,
        system: CameraSystem,
        settings: CaptureSettings,
        emit: Callable[[Media], None],
        report: ReportProblem,
    ) -> None:
        super().__init__(f"camera-{settings.device or 'first'}", report)
        self._system = system
        self._settings = settings
        self._emit = emit
        # Kept across reopening: what config asked for, then what commands changed.
        self._controls = dict(settings.controls)
        self._requests: queue.SimpleQueue[_ControlRequest] = queue.SimpleQueue()
        self._keyframe_wanted = threading.Event()
        self._keyframes_on_request = True  # until the camera turns out to lack the control
        self._epoch = time.monotonic()
        self._last_pts = -1
        self._size = (settings.width, settings.height)  # of the black frames, until a camera

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self._serve_requests(None)  # no thread is left to answer them

    def set_control(self, name: str, value: ControlValue) -> Future[int]:
        """Any thread: set a camera control between two frames. The future holds the value
        the camera took, or `ControlError`, or `CameraUnavailableError` while it is missing."""
        request = _ControlRequest(name, value, Future())
        self._requests.put(request)
        return request.result

    def request_keyframe(self) -> None:
        """Any thread: passthrough's next frame should be an IDR (for a peer that joins or
        lost pictures), asked of the camera between two frames."""
        self._keyframe_wanted.set()

    def _open(self) -> _Streaming:
        info = find_camera(self._system.cameras(), self._settings.device)
        camera = self._system.open(info)
        try:
            wanted = choose_mode(
                camera.modes(),
                self._settings.width,
                self._settings.height,
                self._settings.fps,
                self._settings.pixel_format,
            )
            mode = camera.start(wanted)
        except BaseException:
            camera.close()
            raise
        for name, value in self._controls.items():
            try:
                camera.set_control(name, value)
            except ControlError as error:
                log.warning("camera control %s: %s", name, error)
        converter: FrameConverter | H264Packets
        if self._settings.passthrough:
            converter = H264Packets(mode)
            self._keyframe_wanted.set()  # the camera's first IDR may be a while away
        else:
            converter = FrameConverter(mode, self._settings.width, self._settings.height)
        self._size = (converter.width, converter.height)
        log.info(
            "camera %s (%s): %s, sent as %dx%d",
            info.path,
            info.card,
            mode,
            converter.width,
            converter.height,
        )
        return _Streaming(camera, mode, converter)

    def _close(self, streaming: _Streaming) -> None:
        streaming.camera.close()

    def _stream(self, streaming: _Streaming, stopping: threading.Event) -> None:
        last_frame = time.monotonic()
        delivering = False
        while not stopping.is_set():
            self._serve_requests(streaming.camera)
            raw = streaming.camera.read(READ_TIMEOUT_SECONDS)
            now = time.monotonic()
            if raw is None:
                if now - last_frame > STALL_SECONDS:
                    raise CameraLostError(f"no frame for {STALL_SECONDS:g} s")
                continue
            last_frame = now
            frame = streaming.converter.convert(raw)
            if frame is not None:
                if not delivering:
                    delivering = True
                    self._report(None)
                self._send(frame)

    def _idle(self, seconds: float) -> None:
        period = 1 / FILLER_FPS
        deadline = time.monotonic() + seconds
        while not self._stopping.wait(min(period, max(0.0, deadline - time.monotonic()))):
            self._serve_requests(None)
            if not self._settings.passthrough:
                self._send(black_video(*self._size))
            if time.monotonic() >= deadline:
                return

    def _serve_requests(self, camera: Camera | None) -> None:
        if camera is not None and self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            self._force_keyframe(camera)
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if camera is None:
                request.result.set_exception(CameraUnavailableError("the camera is unavailable"))
                continue
            try:
                held = camera.set_control(request.name, request.value)
            except ControlError as error:
                request.result.set_exception(error)
            except CameraLostError:
                request.result.set_exception(CameraUnavailableError("the camera went away"))
                raise
            else:
                self._controls[request.name] = request.value
                request.result.set_result(held)

    def _force_keyframe(self, camera: Camera) -> None:
        if not self._keyframes_on_request:
            return
        try:
            camera.set_control(FORCE_KEY_FRAME, True)
        except ControlError as error:
            self._keyframes_on_request = False
            log.warning(
                "camera makes no keyframe on request (%s): a joining or recovering peer "
                "waits for its next one",
                error,
            )

    def _send(self, frame: Media) -> None:
        """A frame or packet, stamped on the monotonic clock, so timestamps run on across a
        reopened camera."""
        pts = max(self._last_pts + 1, round((time.monotonic() - self._epoch) * VIDEO_CLOCK))
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self._emit(frame)
