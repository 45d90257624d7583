"""One RTCPeerConnection to one remote participant."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from vcalld.call import aiortc_hooks
from vcalld.call.audio.sender import VoiceSettings
from vcalld.call.events import CallObserver, LocalMedia, Signaller
from vcalld.state import Participant

log = logging.getLogger(__name__)
KINDS = ("audio", "video")


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


class Peer:
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
    ) -> None:
        self.participant = participant
        self._voice = voice
        self._audio_loops: list[asyncio.Task[None]] = []
        self._media = media
        self._send = send
        self._observer = observer
        self._tasks = tasks
        self._lock = asyncio.Lock()
        self._local_tracks: list[MediaStreamTrack] = []
        self.pc = RTCPeerConnection(configuration)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def offer(self) -> None:
        async with self._lock:
            for kind in KINDS:
                track = self._local_track(kind)
                if track is None:
                    self.pc.addTransceiver(kind, direction="recvonly")
                else:
                    self.pc.addTrack(track)
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await self._send_description()

    async def handle(self, data: dict[str, Any]) -> None:
        """Apply one signal; a bad one is logged and dropped, never fatal to the call."""
        async with self._lock:
            try:
                if "description" in data:
                    await self._apply_description(parse_description(data["description"]))
                elif "candidate" in data:
                    await self.pc.addIceCandidate(parse_candidate(data["candidate"]))
                else:
                    raise SignalError("signal carries neither description nor candidate")
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
        # Shielded: cancelling a waiter on aiortc's close future cancels the future itself, and
        # aiortc's own close task (started when DTLS ends) then fails setting its result.
        await asyncio.shield(self.pc.close())
        for loop in self._audio_loops:
            loop.cancel()
        for track in self._local_tracks:
            track.stop()

    async def _apply_description(self, description: RTCSessionDescription) -> None:
        await self.pc.setRemoteDescription(description)
        if description.type != "offer":
            self._attach_audio_engine()
            return
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is None:
                track = self._local_track(transceiver.kind)
                if track is not None:
                    self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._attach_audio_engine()
        await self._send_description()

    def _attach_audio_engine(self) -> None:
        """Once codecs are negotiated, before media flow: vcalld's own audio send and
        playout (FEC, RED, concealment) in place of aiortc's."""
        for index, loop in enumerate(aiortc_hooks.attach(self.pc, self._voice)):
            name = f"playout-{self.participant.id}-{len(self._audio_loops) + index}"
            self._audio_loops.append(self._tasks.create_task(self._play(loop), name=name))

    async def _play(self, loop: Coroutine[Any, Any, None]) -> None:
        try:
            await loop
        except Exception:
            log.exception("audio playout of %s failed", self.participant.name)

    async def _send_description(self) -> None:
        local = self.pc.localDescription
        await self._send({"description": {"type": local.type, "sdp": local.sdp}})

    def _local_track(self, kind: str) -> MediaStreamTrack | None:
        factory = self._media.audio if kind == "audio" else self._media.video
        if factory is None:
            return None
        track = factory()
        self._local_tracks.append(track)
        return track

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.create_task(
            self._consume(track), name=f"remote-{track.kind}-{self.participant.id}"
        )

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            await self._observer.remote_track(self.participant.id, track)
        except Exception:
            log.exception("rendering %s of %s failed", track.kind, self.participant.name)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("peer %s: %s", self.participant.name, state)
        self.participant = self.participant.model_copy(update={"connection": state})
        self._observer.participant_changed(self.participant)
