"""What a call backend reports to its owner, and what it needs from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc.mediastreams import MediaStreamTrack

from vcalld.state import CallState, Participant


@dataclass(frozen=True)
class LocalMedia:
    """Factories for this device's outgoing tracks: one fresh subscription per peer."""

    audio: Callable[[], MediaStreamTrack] | None
    video: Callable[[], MediaStreamTrack] | None


class CallObserver(Protocol):
    def call_state_changed(
        self, state: CallState, room: str | None, error: str | None = None
    ) -> None: ...

    def participant_changed(self, participant: Participant) -> None: ...

    def participant_left(self, participant_id: str) -> None: ...

    def remote_track(self, participant_id: str, track: MediaStreamTrack) -> Awaitable[None]:
        """Consume a remote track until it ends (the backend owns the task that awaits this)."""


Signaller = Callable[[dict[str, object]], Awaitable[None]]
