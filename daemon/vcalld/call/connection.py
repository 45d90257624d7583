"""One RTCPeerConnection with vcalld's audio engine in it, whichever backend signals it."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
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
        self.pc = RTCPeerConnection(configuration)
        self.pc.on("track", self._track_arrived)
        self.pc.on("connectionstatechange", self._state_changed)

    async def create_offer(self, *, receive: bool) -> RTCSessionDescription:
        """An offer sending our media; `receive` also asks for the far end's (a mesh peer),
        without it a kind we do not send is left out (an SFU publisher)."""
        for kind in KINDS:
            track = self._local_track(kind)
            if track is not None:
                self.pc.addTransceiver(track, direction="sendrecv" if receive else "sendonly")
            elif receive:
                self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription

    async def accept_answer(self, answer: RTCSessionDescription) -> None:
        await self.pc.setRemoteDescription(answer)
        self._attach_audio_engine()

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answers `offer`, sending our media on every offered kind we have."""
        await self.pc.setRemoteDescription(offer)
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is None:
                track = self._local_track(transceiver.kind)
                if track is not None:
                    self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._attach_audio_engine()
        return self.pc.localDescription

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
