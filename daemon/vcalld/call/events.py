"""What a call backend reports to its owner, and what it needs from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack

from vcalld.media.video_codecs import TrackEncoding
from vcalld.state import CallState, Participant, screen_of


def _always(kind: str) -> bool:
    return True


def _no_profile() -> str | None:
    return None


@dataclass(frozen=True)
class LocalMedia:
    """Factories for this device's outgoing tracks: one fresh subscription per peer; and
    whether a kind is sent right now (video is off in a voice-only call: its track stays,
    its direction says it sends nothing)."""

    audio: Callable[[], MediaStreamTrack] | None
    video: Callable[[], MediaStreamTrack] | None
    sends: Callable[[str], bool] = _always
    # The one codec the video goes out in when it is encoded before the connections (by its
    # source: "video/H264", or once for all: "video/VP8"); for a source's H.264, the
    # stream's profile-level-id once known, which the codec is negotiated in.
    video_codec: str | None = None
    video_profile: Callable[[], str | None] = _no_profile
    # The shared screen as a second video track (`[screen_share] second_track`); `sends`
    # says "screen" while it is shared.
    screen: Callable[[], MediaStreamTrack] | None = None
    # Told of each connection's video sender once negotiated, when one encoder serves them
    # all, ours or a source's (its keyframe requests, and bandwidth estimate, are that
    # encoder's business).
    video_sender: Callable[[RTCRtpSender], None] | None = None
    # How each video slot ("video", "screen") is encoded where a connection encodes it.
    video_encoding: dict[str, TrackEncoding] = field(default_factory=dict)


class CallObserver(Protocol):
    def call_state_changed(
        self, state: CallState, room: str | None, error: str | None = None
    ) -> None: ...

    def participant_changed(self, participant: Participant) -> None: ...

    def participant_left(self, participant_id: str) -> None: ...

    def remote_track(self, participant_id: str, track: MediaStreamTrack) -> Awaitable[None]:
        """Consume a remote track until it ends (the backend owns the task that awaits this)."""


Signaller = Callable[[dict[str, object]], Awaitable[None]]


def remote_tracks_of(
    observer: CallObserver, participant_id: str
) -> Callable[[MediaStreamTrack, bool], Awaitable[None]]:
    """What a participant's connection hands its remote tracks to (a `MediaConnection`'s
    `on_track`): their shared screen under a key of its own, `screen_of(participant_id)`."""

    def consume(track: MediaStreamTrack, screen: bool) -> Awaitable[None]:
        return observer.remote_track(screen_of(participant_id) if screen else participant_id, track)

    return consume
