"""Mesh backend: the project's own room server, one peer connection per remote participant."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection

from vcalld.call.backends.base import SessionBackend
from vcalld.call.backends.mesh_peer import Peer, SignalError, connection_of
from vcalld.call.ice import rtc_configuration
from vcalld.room import tokens
from vcalld.state import CallState, Participant

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
# A pair's next connection starts at least this long after the last: one that fails at once
# (a far end that cannot take it) is not retried in a tight loop.
RESTART_SPACING_SECONDS = 2.0
# A far end that leaves closes its connections just before the room server says it left: a
# failure is acted on only if it is still in the room this long after.
LEAVING_GRACE_SECONDS = 1.0
# A token the daemon signs itself is used once, at once: it need not outlive the join.
OWN_TOKEN_SECONDS = 60.0
# What the room server says when it will not let us in: not worth retrying at once.
REFUSALS = ("room-full", "invalid-message", "already-joined", "unauthorized")


class RoomRejectedError(Exception):
    """The room server refused to let us in (room full, bad name)."""


class MeshBackend(SessionBackend["_Session"]):
    expected = (aiohttp.ClientError, OSError, RoomRejectedError)

    def new_session(self, room: str, joined: asyncio.Event) -> _Session:
        return _Session(self, room, joined)

    def server(self) -> str:
        return f"room server {self.config.server_url}"

    def join_message(self, room: str) -> dict[str, Any]:
        message = {"type": "join", "room": room, "name": self.name}
        if self.config.room_secret_file is not None:
            secret = tokens.read_secret(self.config.room_secret_file)
            message["token"] = tokens.issue(secret, room, OWN_TOKEN_SECONDS)
        return message

    def tls_context(self) -> ssl.SSLContext | bool:
        """Verified against the configured CA, or the system's (aiohttp's True)."""
        if self.config.server_ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.config.server_ca_file)


class _Session:
    """One connection to the room server; its end closes every peer of that connection."""

    def __init__(self, backend: MeshBackend, room: str, joined: asyncio.Event) -> None:
        self._backend = backend
        self._room = room
        self._joined = joined
        self._peers: dict[str, Peer] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    def peer_connections(self) -> dict[str, RTCPeerConnection]:
        return {participant_id: peer.pc for participant_id, peer in self._peers.items()}

    def upload_connection(self) -> None:
        """Each peer connection carries its own copy of our media."""
        return None

    async def renegotiate(self) -> None:
        for peer in list(self._peers.values()):
            await peer.renegotiate()

    async def run(self) -> None:
        """Until the connection to the room server ends."""
        backend = self._backend
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                backend.config.server_url, heartbeat=HEARTBEAT_SECONDS, ssl=backend.tls_context()
            ) as ws,
            asyncio.TaskGroup() as tasks,
        ):
            self._ws = ws
            await ws.send_json(backend.join_message(self._room))
            try:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        payload = json.loads(message.data)
                        await self._dispatch(payload, tasks)
                    except (ValueError, KeyError, TypeError, AttributeError) as error:
                        log.warning("unusable message from the room server: %r", error)
            finally:
                # Out of the room first: the others hear that we left before our connections
                # close, so they do not take the closing for a failure to recover from.
                await ws.close()
                await self._close_all()

    async def _dispatch(self, message: dict[str, Any], tasks: asyncio.TaskGroup) -> None:
        observer = self._backend.observer
        kind = message.get("type")
        if kind == "joined":
            self._joined.set()
            observer.call_state_changed(CallState.IN_CALL, self._room)
            for entry in message["participants"]:
                peer = self._add_peer(Participant(id=entry["id"], name=entry["name"]), tasks)
                tasks.create_task(peer.offer(), name=f"offer-{peer.participant.id}")
        elif kind == "participant-joined":
            entry = message["participant"]
            self._add_peer(Participant(id=entry["id"], name=entry["name"]), tasks)
        elif kind == "participant-left":
            await self._remove_peer(message["id"])
        elif kind == "signal":
            sender = self._peers.get(message["from"])
            if sender is None:
                log.warning("signal from unknown participant %s", message["from"])
            elif isinstance(message.get("data"), dict):
                self._route_signal(sender, message["data"], tasks)
        elif kind == "error":
            if message.get("code") in REFUSALS:
                raise RoomRejectedError(f"{message.get('code')}: {message.get('message')}")
            log.warning("room server error: %s", message)

    def _route_signal(self, peer: Peer, data: dict[str, Any], tasks: asyncio.TaskGroup) -> None:
        """To the pair's connection it names: a later one offered replaces ours, a restart
        request for ours (when we offer) starts the next, one for an earlier is dropped."""
        try:
            number = connection_of(data)
        except SignalError as error:
            log.warning("bad signal from %s: %s", peer.participant.name, error)
            return
        if "restart" in data:
            if data["restart"] == peer.number and peer.offerer:
                self._replace(peer, tasks)
            return
        offer = isinstance(data.get("description"), dict) and data["description"].get("type")
        if number > peer.number and offer == "offer":
            peer = self._replace(peer, tasks, number, offers=False)
        elif number != peer.number:
            log.debug(
                "signal from %s for connection %d, not %d",
                peer.participant.name,
                number,
                peer.number,
            )
            return
        tasks.create_task(peer.handle(data), name=f"signal-{peer.participant.id}")

    def _add_peer(
        self,
        participant: Participant,
        tasks: asyncio.TaskGroup,
        number: int = 0,
        *,
        offerer: bool = False,
    ) -> Peer:
        backend = self._backend
        peer = Peer(
            participant,
            configuration=rtc_configuration(backend.config.ice_servers),
            media=backend.media,
            send=lambda data: self._signal(participant.id, data),
            observer=backend.observer,
            tasks=tasks,
            voice=backend.voice,
            on_failed=lambda failed: self._connection_failed(failed, tasks),
            number=number,
            offerer=offerer,
        )
        self._peers[participant.id] = peer
        backend.observer.participant_changed(peer.participant)
        return peer

    def _connection_failed(self, peer: Peer, tasks: asyncio.TaskGroup) -> None:
        async def restart_unless_gone() -> None:
            await asyncio.sleep(LEAVING_GRACE_SECONDS)
            if self._peers.get(peer.participant.id) is not peer:
                return  # replaced already (the far end offered the next), or it left
            log.info("connection to %s failed; starting the next", peer.participant.name)
            if peer.offerer:
                self._replace(peer, tasks)
            else:
                await peer.ask_for_restart()

        tasks.create_task(restart_unless_gone(), name=f"restart-{peer.participant.id}")

    def _replace(
        self, old: Peer, tasks: asyncio.TaskGroup, number: int | None = None, *, offers: bool = True
    ) -> Peer:
        """The pair's next connection, numbered `number` (the next after `old`'s if None);
        signals go to it at once, and it negotiates once `old` is closed (`offers`: we make
        the offer, at least RESTART_SPACING_SECONDS after `old` was made)."""
        new = self._add_peer(
            old.participant, tasks, old.number + 1 if number is None else number, offerer=offers
        )

        async def take_over() -> None:
            await old.close()
            if not offers:
                return
            await asyncio.sleep(old.created + RESTART_SPACING_SECONDS - time.monotonic())
            if self._peers.get(new.participant.id) is new:  # not left meanwhile
                await new.offer()

        tasks.create_task(take_over(), name=f"connection-{new.number}-{new.participant.id}")
        return new

    async def _signal(self, to: str, data: dict[str, object]) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_json({"type": "signal", "to": to, "data": data})

    async def _remove_peer(self, participant_id: str) -> None:
        removed = self._peers.pop(participant_id, None)
        if removed is not None:
            await removed.close()
        self._backend.observer.participant_left(participant_id)

    async def _close_all(self) -> None:
        for participant_id in list(self._peers):
            await self._remove_peer(participant_id)
