"""The mesh backend's peer: one connection per remote participant, signalled through the room
server, whose messages are parsed here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from vcalld.call.audio.sender import VoiceSettings
from vcalld.call.connection import MediaConnection
from vcalld.call.events import CallObserver, LocalMedia, Signaller, remote_tracks_of
from vcalld.state import Participant

log = logging.getLogger(__name__)


class SignalError(ValueError):
    """A remote participant sent something that is not a usable description or candidate."""


def parse_candidate(payload: Any) -> RTCIceCandidate | None:
    """A browser's `RTCIceCandidate.toJSON()`; None (or an empty candidate) ends gathering."""
    if payload is None:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("candidate", ""), str):
        raise SignalError("candidate must be an object with a string 'candidate'")
    text = payload.get("candidate", "")
    if not text:
        return None
    try:
        candidate = candidate_from_sdp(text.split(":", 1)[1] if ":" in text else text)
    except (ValueError, IndexError, AssertionError) as error:
        raise SignalError(f"unparsable candidate {text[:80]!r}") from error
    candidate.sdpMid = payload.get("sdpMid")
    candidate.sdpMLineIndex = payload.get("sdpMLineIndex")
    return candidate


def parse_description(payload: Any) -> RTCSessionDescription:
    if not isinstance(payload, dict):
        raise SignalError("description must be an object")
    kind, sdp = payload.get("type"), payload.get("sdp")
    if kind not in ("offer", "answer") or not isinstance(sdp, str):
        raise SignalError("description needs type 'offer' or 'answer' and a string 'sdp'")
    return RTCSessionDescription(sdp=sdp, type=kind)


def connection_of(data: dict[str, Any]) -> int:
    """Which of a pair's connections a signal is about: 0, the first, unless it says."""
    connection = data.get("connection", 0)
    if not isinstance(connection, int) or isinstance(connection, bool) or connection < 0:
        raise SignalError("connection must be a non-negative integer")
    return connection


class Peer:
    """A mesh participant: our offer or answer and candidates go through the room server.

    Only the side that made the first offer ever offers (the newcomer): the other asks it
    to, with a `renegotiate` signal. Two offers can then never cross, which matters because
    aiortc cannot roll one back.

    A pair's connections are numbered (`connection` in every signal): one that fails (ICE
    consent lost, DTLS ended) is replaced by the next, which the offerer offers, on its own
    failure or when the other side asks with a `restart` signal naming the failed one."""

    def __init__(
        self,
        participant: Participant,
        *,
        configuration: RTCConfiguration,
        media: LocalMedia,
        send: Signaller,
        observer: CallObserver,
        tasks: asyncio.TaskGroup,
        voice: VoiceSettings,
        on_failed: Callable[[Peer], None],
        number: int = 0,
        offerer: bool = False,
    ) -> None:
        self.participant = participant.model_copy(update={"connection": "new"})
        self.number = number
        self.created = time.monotonic()
        self._send = send
        self._observer = observer
        self._on_failed = on_failed
        self._closing = False
        self._lock = asyncio.Lock()
        self._offerer = offerer
        self._offer_again = False  # asked to renegotiate while our offer awaited its answer
        self.connection = MediaConnection(
            participant.id,
            configuration=configuration,
            media=media,
            voice=voice,
            tasks=tasks,
            on_track=remote_tracks_of(observer, participant.id),
            on_state=self._on_connection_state,
        )
        self.pc = self.connection.pc

    @property
    def offerer(self) -> bool:
        return self._offerer

    async def offer(self) -> None:
        async with self._lock:
            self._offerer = True
            await self._send_description(await self.connection.create_offer(receive=True))

    async def ask_for_restart(self) -> None:
        """Our connection failed and the far end offers: it is asked for the next one."""
        await self._signal({"restart": self.number})

    async def renegotiate(self) -> None:
        """Tell the far end what we send now (video turned on or off)."""
        async with self._lock:
            try:
                if self._offerer:
                    await self._offer_again_if_stable()
                else:
                    await self._signal({"renegotiate": True})
            except Exception:
                # A connection closing as we offer: its participant rejoins or is gone.
                log.exception("renegotiating with %s", self.participant.name)

    async def _offer_again_if_stable(self) -> None:
        self._offer_again = not self.connection.renegotiable
        if not self._offer_again:
            await self._send_description(await self.connection.create_offer(receive=True))

    async def handle(self, data: dict[str, Any]) -> None:
        """Apply one signal; a bad one is logged and dropped, never fatal to the call."""
        async with self._lock:
            try:
                if "description" in data:
                    await self._apply_description(parse_description(data["description"]))
                elif "candidate" in data:
                    await self.pc.addIceCandidate(parse_candidate(data["candidate"]))
                elif data.get("renegotiate") is True:
                    if not self._offerer:
                        raise SignalError("asked to renegotiate by the side that offers")
                    await self._offer_again_if_stable()
                else:
                    raise SignalError(
                        "signal carries no description, candidate or renegotiate request"
                    )
            except SignalError as error:
                log.warning("bad signal from %s: %s", self.participant.name, error)
            except Exception as error:
                # aiortc's SDP and candidate parsers reject bad input with assert, KeyError,
                # IndexError and more; none of it may end the call for everyone else.
                log.warning(
                    "unusable signal from %s: %s: %s",
                    self.participant.name,
                    type(error).__name__,
                    error,
                )

    async def close(self) -> None:
        self._closing = True
        await self.connection.close()

    async def _apply_description(self, description: RTCSessionDescription) -> None:
        if description.type == "offer":
            await self._send_description(await self.connection.answer(description))
        else:
            await self.connection.accept_answer(description)
            if self._offer_again:
                await self._offer_again_if_stable()

    async def _send_description(self, local: RTCSessionDescription) -> None:
        await self._signal({"description": {"type": local.type, "sdp": local.sdp}})

    async def _signal(self, data: dict[str, Any]) -> None:
        await self._send({**data, "connection": self.number})

    def _on_connection_state(self, state: str) -> None:
        if self._closing:
            return  # closed by us, or replaced: the session says what follows
        self.participant = self.participant.model_copy(update={"connection": state})
        self._observer.participant_changed(self.participant)
        if state in ("failed", "closed"):
            self._closing = True  # reported once; the session replaces this connection
            self._on_failed(self)
