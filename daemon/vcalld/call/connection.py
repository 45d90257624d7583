"""One RTCPeerConnection with vcalld's audio engine in it, whichever backend signals it."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from vcalld.call import aiortc_hooks
from vcalld.call.audio.sender import VoiceSettings
from vcalld.call.events import LocalMedia

log = logging.getLogger(__name__)
KINDS = ("audio", "video")
NO_MEDIA = LocalMedia(audio=None, video=None)


class MediaConnection:
    """Owns the connection's tasks (playout, remote tracks) and its local track subscriptions,
    and ends all of them in `close()`."""

    def __init__(
        self,
        label: str,
        *,
        configuration: RTCConfiguration,
        media: LocalMedia,
        voice: VoiceSettings,
        tasks: asyncio.TaskGroup,
        on_state: Callable[[str], None],
        on_track: Callable[[MediaStreamTrack], Awaitable[None]] | None = None,
    ) -> None:
        self.label = label
        self._media = media
        self._voice = voice
        self._tasks = tasks
        self._on_track = on_track
        self._on_state = on_state
        self._owned: list[asyncio.Task[None]] = []
        self._local_tracks: list[MediaStreamTrack] = []
        self._sending: dict[str, RTCRtpTransceiver] = {}  # by kind: where our track goes
        self._receive = True  # a mesh peer or subscriber; False: an SFU publisher
        self.pc = RTCPeerConnection(configuration)
        self.pc.on("track", self._track_arrived)
        self.pc.on("connectionstatechange", self._state_changed)

    async def create_offer(self, *, receive: bool) -> RTCSessionDescription:
        """An offer sending what we send now, renegotiating if there was one before. With
        `receive` (a mesh peer) it has one transceiver of each kind from the first, also for a
        kind we cannot send; without (an SFU publisher) one for each kind as we first send it
        (an SFU rejects a stream that starts inactive, for good)."""
        self._receive = receive
        negotiated = {transceiver.kind for transceiver in self.pc.getTransceivers()}
        for kind in KINDS:
            if kind in negotiated or not (receive or self._media.sends(kind)):
                continue
            track = self._local_track(kind)
            if track is not None:
                self._sending[kind] = self.pc.addTransceiver(track)
                self._fix_codec(kind)
            elif receive:
                self.pc.addTransceiver(kind, direction="recvonly")
        self._set_directions()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription

    async def accept_answer(self, answer: RTCSessionDescription) -> None:
        await self.pc.setRemoteDescription(answer)
        self._attach_audio_engine()

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answers `offer` (a first one or a renegotiation), sending our media on the first
        offered transceiver of each kind we have, as far as we send it now."""
        await self.pc.setRemoteDescription(offer)
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind not in self._sending:
                track = self._local_track(transceiver.kind)
                if track is not None:
                    transceiver.sender.replaceTrack(track)
                    self._sending[transceiver.kind] = transceiver
                    self._fix_codec(transceiver.kind)
        self._set_directions()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._attach_audio_engine()
        return self.pc.localDescription

    @property
    def renegotiable(self) -> bool:
        """Whether an offer can be made now: not while one is waiting for its answer."""
        return self.pc.signalingState == "stable" and self.pc.connectionState != "closed"

    def _fix_codec(self, kind: str) -> None:
        """A source's own encoding (H.264 from a camera or a plugin) is the only one sent."""
        codec = self._media.video_codec if kind == "video" else None
        if codec is not None:
            aiortc_hooks.only_codec(self._sending[kind], codec)

    def _set_directions(self) -> None:
        """A kind we have but do not send now (video in a voice-only call) keeps its track
        and its m-line; only its direction says so, which the far end sees as no track."""
        for kind, transceiver in self._sending.items():
            sending = self._media.sends(kind)
            if self._receive:
                transceiver.direction = "sendrecv" if sending else "recvonly"
            else:
                transceiver.direction = "sendonly" if sending else "inactive"

    async def close(self) -> None:
        # Shielded: cancelling a waiter on aiortc's close future cancels the future itself, and
        # aiortc's own close task (started when DTLS ends) then fails setting its result.
        await asyncio.shield(self.pc.close())
        for task in self._owned:
            task.cancel()
        for track in self._local_tracks:
            track.stop()

    def _attach_audio_engine(self) -> None:
        """Once codecs are negotiated, before media flow: vcalld's own audio send and
        playout (FEC, RED, concealment) in place of aiortc's."""
        for loop in aiortc_hooks.attach(self.pc, self._voice):
            self._own(loop, f"playout-{self.label}-{len(self._owned)}")

    def _local_track(self, kind: str) -> MediaStreamTrack | None:
        factory = self._media.audio if kind == "audio" else self._media.video
        if factory is None:
            return None
        track = factory()
        self._local_tracks.append(track)
        return track

    def _track_arrived(self, track: MediaStreamTrack) -> None:
        if self._on_track is not None:
            work = functools.partial(self._on_track, track)
            self._own(work, f"remote-{track.kind}-{self.label}")

    def _own(self, work: Callable[[], Awaitable[None]], name: str) -> None:
        self._owned.append(self._tasks.create_task(self._logged(work, name), name=name))

    async def _logged(self, work: Callable[[], Awaitable[None]], name: str) -> None:
        """`work` is started here, so a task cancelled before it runs leaves nothing
        half-made; its failure is logged and ends only itself, never the call."""
        try:
            await work()
        except Exception:
            log.exception("%s failed", name)

    def _state_changed(self) -> None:
        log.info("connection %s: %s", self.label, self.pc.connectionState)
        self._on_state(self.pc.connectionState)
