"""What both call backends share: their arguments, the session of the moment, and staying in
the room, a session being run again after it ends with capped, jittered backoff and every
change reported to the observer."""

from __future__ import annotations

import asyncio
import logging
from typing import Generic, Protocol, TypeVar

from aiortc import RTCPeerConnection

from vcalld.backoff import backoff_seconds
from vcalld.call.audio.sender import VoiceSettings
from vcalld.call.events import CallObserver, LocalMedia
from vcalld.config.models import CallConfig
from vcalld.state import CallState

log = logging.getLogger(__name__)


class Session(Protocol):
    """One connection to the signalling server; its end ends the peers made through it."""

    async def run(self) -> None: ...

    def peer_connections(self) -> dict[str, RTCPeerConnection]: ...

    def upload_connection(self) -> RTCPeerConnection | None: ...

    async def renegotiate(self) -> None:
        """Tell every connection what we send now."""


SessionT = TypeVar("SessionT", bound=Session)


class SessionBackend(Generic[SessionT]):
    """A backend is its sessions, one after another: `new_session` makes the next,
    which sets `joined` once in the room; `expected` failures (the server unreachable or
    refusing us) are logged as one line naming `server()`, any other with its traceback,
    since a kiosk rejoins rather than stays out either way."""

    expected: tuple[type[Exception], ...] = ()

    def __init__(
        self, config: CallConfig, name: str, media: LocalMedia, observer: CallObserver
    ) -> None:
        self.config = config
        self.name = name
        self.media = media
        self.observer = observer
        self.voice = VoiceSettings.from_config(config.audio)
        self._session: SessionT | None = None

    def new_session(self, room: str, joined: asyncio.Event) -> SessionT:
        raise NotImplementedError

    def server(self) -> str:
        raise NotImplementedError

    def peer_connections(self) -> dict[str, RTCPeerConnection]:
        """The connection carrying each remote participant's media, by participant id."""
        return self._session.peer_connections() if self._session is not None else {}

    def upload_connection(self) -> RTCPeerConnection | None:
        """The one connection our media go up on (an SFU's publisher), None in a mesh."""
        return self._session.upload_connection() if self._session is not None else None

    async def renegotiate(self) -> None:
        """What `media.sends` says changed: the session's connections are told (one that
        starts later reads it when it offers or answers)."""
        if self._session is not None:
            await self._session.renegotiate()

    async def run(self, room: str) -> None:
        """Stay in `room` until cancelled."""
        attempt = 0
        while True:
            state = CallState.CONNECTING if attempt == 0 else CallState.RECONNECTING
            self.observer.call_state_changed(state, room)
            joined = asyncio.Event()
            error = await self._session_in(room, joined)
            if joined.is_set():
                attempt = 0
            self.observer.call_state_changed(CallState.RECONNECTING, room, error)
            config = self.config
            await asyncio.sleep(
                backoff_seconds(attempt, config.reconnect_min_seconds, config.reconnect_max_seconds)
            )
            attempt += 1

    async def _session_in(self, room: str, joined: asyncio.Event) -> str | None:
        """Runs one session to its end; what ended it, if it failed."""
        self._session = self.new_session(room, joined)
        try:
            await self._session.run()
        except Exception as raised:
            failure = _single(raised)
            if isinstance(failure, self.expected):
                error = f"{self.server()}: {failure or type(failure).__name__}"
                log.warning("%s", error)
                return error
            error = f"call session failed: {type(failure).__name__}: {failure}"
            log.exception("%s; rejoining", error)
            return error
        finally:
            self._session = None
        return None


def _single(failure: Exception) -> Exception:
    """What a task group raised for one failure: a session's TaskGroup wraps even the server
    refusing us (room full, no token) in an ExceptionGroup."""
    while isinstance(failure, ExceptionGroup) and len(failure.exceptions) == 1:
        failure = failure.exceptions[0]
    return failure
