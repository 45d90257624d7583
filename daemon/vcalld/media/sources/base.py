"""The source plugin interface: built-ins register through entry points like third parties."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from av import Packet
from av.frame import Frame

from vcalld.config import AudioConfig, VideoConfig
from vcalld.plugins import SOURCE_GROUP, load_plugin

if TYPE_CHECKING:
    from vcalld.media.camera.device import ControlValue
    from vcalld.media.voice.processor import VoiceProcessor

Publish = Callable[[Frame], None]
# What a video source may publish: frames, or packets it encoded itself (EncodedVideoSource).
if TYPE_CHECKING:
    Media: TypeAlias = Frame | Packet[Any]
else:
    Media = Frame | Packet  # PyAV's Packet is generic in its stubs only
PublishMedia = Callable[[Media], None]
# Why the source cannot deliver what it should ("microphone unavailable: …"), None once it can.
ReportProblem = Callable[[str | None], None]


class MediaSource(Protocol):
    """Produces frames until cancelled; `publish` never blocks. A source whose device is
    missing keeps producing (silence, black) and reports why, so the outgoing track lives."""

    kind: str

    async def run(self, publish: Publish, report: ReportProblem) -> None: ...


@runtime_checkable
class Microphone(Protocol):
    """A source that hears a room, and so takes voice processing (echo cancellation with
    the speaker as reference, noise suppression, gain control) before it publishes."""

    def process_voice(self, processor: VoiceProcessor) -> None: ...


@runtime_checkable
class AdjustableCamera(Protocol):
    """A video source whose device has controls (brightness, exposure, focus, zoom, ...):
    the `set-camera-control` command reaches it. Raises `ControlError` for a control or value
    the device does not take, `CameraUnavailableError` while the device is missing."""

    async def set_control(self, name: str, value: ControlValue) -> int:
        """The value the device holds afterwards."""


@runtime_checkable
class EncodedVideoSource(Protocol):
    """A video source that publishes encoded packets (`av.Packet` with pts and time base),
    sent as they are: never decoded, processed or encoded again. `codec` names their
    encoding ("video/H264": Annex B access units, constrained baseline, no B-frames, an IDR
    with SPS and PPS now and then, since a peer that joins starts at one), and is the only
    video codec offered or accepted. Mute sends nothing (a packet cannot be blacked out)."""

    kind: str
    codec: str

    async def run(self, publish: PublishMedia, report: ReportProblem) -> None: ...


@runtime_checkable
class KeyframeSource(Protocol):
    """An encoded video source that makes a keyframe when asked: a camera through
    V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, an encoder by coding its next frame as an IDR. The
    peers' keyframe requests (PLI, FIR) reach it, at most one a second, and so does a new
    peer's need to start on one. A source without it has only its own IDRs to offer them."""

    def request_keyframe(self) -> None: ...


VideoSource = MediaSource | EncodedVideoSource


class SourceFactory(Protocol):
    def __call__(self, config: VideoConfig | AudioConfig) -> MediaSource: ...


def load_source(name: str, config: VideoConfig | AudioConfig) -> MediaSource:
    factory: SourceFactory = load_plugin(SOURCE_GROUP, name)
    return factory(config)
