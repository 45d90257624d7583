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
# What a connection carries, each on a transceiver of its own, in m-line order: the shared
# screen, as a second track, is the second video one.
SLOTS = ("audio", "video", "screen")
NO_MEDIA = LocalMedia(audio=None, video=None)


def _kind(slot: str) -> str:
    return "video" if slot == "screen" else slot


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
        on_track: Callable[[MediaStreamTrack, bool], Awaitable[None]] | None = None,
    ) -> None:
        """`on_track(track, screen)` consumes a remote track; `screen` is true for the far
        end's shared screen (its second video track)."""
        self.label = label
        self._media = media
        self._voice = voice
        self._tasks = tasks
        self._on_track = on_track
        self._on_state = on_state
        self._owned: list[asyncio.Task[None]] = []
        self._local_tracks: list[MediaStreamTrack] = []
        self._slots: dict[str, RTCRtpTransceiver] = {}  # the transceiver of each slot
        self._ours: set[str] = set()  # the slots our tracks go out on
        self._receive = True  # a mesh peer or subscriber; False: an SFU publisher
        self.pc = RTCPeerConnection(configuration)
        self.pc.on("track", self._track_arrived)
        self.pc.on("connectionstatechange", self._state_changed)

    async def create_offer(self, *, receive: bool) -> RTCSessionDescription:
        """An offer sending what we send now, renegotiating if there was one before. With
        `receive` (a mesh peer) it has a transceiver for every slot from the first, also one
        we cannot send on (the far end may); without (an SFU publisher) one for each slot as
        we first send on it (an SFU rejects a stream that starts inactive, for good)."""
        self._receive = receive
        for slot in SLOTS:
            if slot in self._slots or not (receive or self._media.sends(slot)):
                continue
            track = self._local_track(slot)
            if track is not None:
                self._slots[slot] = self.pc.addTransceiver(track)
                self._ours.add(slot)
                self._fix_codec(slot)
            elif receive:
                self._slots[slot] = self.pc.addTransceiver(_kind(slot), direction="recvonly")
        self._set_directions()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription

    async def accept_answer(self, answer: RTCSessionDescription) -> None:
        await self.pc.setRemoteDescription(answer)
        self._negotiated()

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answers `offer` (a first one or a renegotiation): the offered transceivers take
        the slots in order (the first video one the camera's, the second the screen's), and
        ours send on them as far as we send now."""
        await self.pc.setRemoteDescription(offer)
        for transceiver in self.pc.getTransceivers():
            slot = self._free_slot(transceiver)
            if slot is None:
                continue
            self._slots[slot] = transceiver
            track = self._local_track(slot)
            if track is not None:
                transceiver.sender.replaceTrack(track)
                self._ours.add(slot)
                self._fix_codec(slot)
        self._set_directions()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._negotiated()
        return self.pc.localDescription

    def _free_slot(self, transceiver: RTCRtpTransceiver) -> str | None:
        """The slot a newly offered transceiver takes; None: already placed, or one more
        than we have slots for (left receive-only, as aiortc made it)."""
        if transceiver in self._slots.values():
            return None
        return next(
            (s for s in SLOTS if _kind(s) == transceiver.kind and s not in self._slots), None
        )

    @property
    def renegotiable(self) -> bool:
        """Whether an offer can be made now: not while one is waiting for its answer."""
        return self.pc.signalingState == "stable" and self.pc.connectionState != "closed"

    def _fix_codec(self, slot: str) -> None:
        """Video encoded before the connection (a source's own H.264, the shared encoder's
        VP8) goes out in that codec alone."""
        codec = self._media.video_codec if slot == "video" else None
        if codec is not None:
            aiortc_hooks.only_codec(self._slots[slot], codec, self._media.video_profile())

    def _set_directions(self) -> None:
        """A slot we have but do not send on now (video in a voice-only call, a screen not
        shared) keeps its track and its m-line; only its direction says so, which the far
        end sees as no track."""
        for slot in self._ours:
            transceiver, sending = self._slots[slot], self._media.sends(slot)
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

    def _negotiated(self) -> None:
        """Once codecs are negotiated, before media flow: vcalld's own audio send and
        playout (FEC, RED, concealment) and video receive and encoders in place of
        aiortc's, and our video sender made known to an encoder that serves every
        connection."""
        camera = self._media.video_encoding.get("video")
        start = camera.bitrates.start if camera is not None else None
        for loop in aiortc_hooks.attach(self.pc, self._voice, start):
            self._own(loop, f"playout-{self.label}-{len(self._owned)}")
        for slot, encoding in self._media.video_encoding.items():
            if slot in self._ours:
                aiortc_hooks.use_video_encoder(self._slots[slot], encoding)
        if self._media.video_sender is not None and "video" in self._ours:
            self._media.video_sender(self._slots["video"].sender)

    def _local_track(self, slot: str) -> MediaStreamTrack | None:
        media = self._media
        factory = {"audio": media.audio, "video": media.video, "screen": media.screen}[slot]
        if factory is None:
            return None
        track = factory()
        self._local_tracks.append(track)
        return track

    def _track_arrived(self, track: MediaStreamTrack) -> None:
        if self._on_track is not None:
            work = functools.partial(self._on_track, track, self._is_screen(track))
            self._own(work, f"remote-{track.kind}-{self.label}")

    def _is_screen(self, track: MediaStreamTrack) -> bool:
        """The far end's second video track is its shared screen (told by position: the
        event comes before an answer has placed the transceivers in slots)."""
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        return len(videos) > 1 and videos[1].receiver.track is track

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
