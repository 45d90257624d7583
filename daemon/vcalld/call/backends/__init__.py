"""Call backends: the built-in room server's mesh, or a Janus VideoRoom (an SFU). Both take
the same arguments and report through the same CallObserver, so nothing above them changes
when a kiosk moves from one to the other."""

from __future__ import annotations

from typing import Protocol

from aiortc import RTCPeerConnection

from vcalld.call.audio.sender import VoiceSettings
from vcalld.call.backends.janus import JanusBackend
from vcalld.call.backends.mesh import MeshBackend
from vcalld.call.events import CallObserver, LocalMedia
from vcalld.config.models import CallConfig


class CallBackend(Protocol):
    voice: VoiceSettings

    async def run(self, room: str) -> None:
        """Stay in `room` until cancelled."""

    def peer_connections(self) -> dict[str, RTCPeerConnection]:
        """The connection carrying each remote participant's media, by participant id."""

    def upload_connection(self) -> RTCPeerConnection | None:
        """The one connection our media go up on (an SFU's publisher), None in a mesh."""


def make_backend(
    config: CallConfig, name: str, media: LocalMedia, observer: CallObserver
) -> CallBackend:
    backend = JanusBackend if config.backend == "janus" else MeshBackend
    return backend(config, name, media, observer)
