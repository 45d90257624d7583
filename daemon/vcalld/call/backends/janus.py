"""Janus VideoRoom backend: our media go up once, to the SFU, and each remote publisher comes
down on a subscription of its own.

One subscriber handle per publisher rather than one multistream handle for all: a join or a
leave then touches only that participant's connection, where a shared one would be
renegotiated for everyone on every change; each participant's statistics and audio playout
are its own connection's, exactly as in the mesh; and a subscription Janus hangs up is redone
alone. It costs one ICE and DTLS session per remote, which a mesh pays as well.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import suppress
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from vcalld.call.backends.base import SessionBackend
from vcalld.call.backends.mesh_peer import SignalError, parse_candidate
from vcalld.call.connection import NO_MEDIA, MediaConnection
from vcalld.call.events import CallObserver, LocalMedia, remote_tracks_of
from vcalld.call.ice import rtc_configuration
from vcalld.call.janus.session import Handle, JanusError, JanusSession, SessionSettings
from vcalld.call.janus.transport import JanusConnectionError
from vcalld.call.janus.videoroom import PLUGIN, Feed, Room, feeds, gone
from vcalld.config.models import CallConfig
from vcalld.state import CallState, Participant

log = logging.getLogger(__name__)
RESUBSCRIBE_SECONDS = 1.0
FEED_CHANGED = "feed-changed"  # our own event on a subscriber handle's queue
NO_SUCH_FEED = 428


class PublisherLostError(Exception):
    """Our upload to Janus ended (Janus hung it up, or the connection failed)."""


class JanusBackend(SessionBackend["_RoomSession"]):
    """After Janus restarts, the next session joins and publishes again."""

    expected = (JanusConnectionError, JanusError, PublisherLostError, aiohttp.ClientError)

    def __init__(
        self, config: CallConfig, name: str, media: LocalMedia, observer: CallObserver
    ) -> None:
        super().__init__(config, name, media, observer)
        janus = config.janus
        self.session_settings = SessionSettings(
            token=janus.token.get_secret_value() if janus.token else None,
            api_secret=janus.api_secret.get_secret_value() if janus.api_secret else None,
            keepalive_seconds=janus.keepalive_seconds,
        )

    def new_session(self, room: str, joined: asyncio.Event) -> _RoomSession:
        return _RoomSession(self, room, joined)

    def server(self) -> str:
        return f"Janus {' or '.join(self.config.janus.urls)}"


class _RoomSession:
    """One Janus session: its end (connection lost, Janus restarted) closes everything."""

    def __init__(self, backend: JanusBackend, room: str, joined: asyncio.Event) -> None:
        self._backend = backend
        self._room_name = room
        self._room = Room(room, backend.config.janus)
        self._joined = joined
        self._configuration = rtc_configuration(backend.config.ice_servers)
        self._publisher: MediaConnection | None = None
        self._publisher_handle: Handle | None = None
        self._publishing = asyncio.Lock()  # one offer to Janus at a time
        self._subscriptions: dict[str, _Subscription] = {}

    def peer_connections(self) -> dict[str, RTCPeerConnection]:
        return {
            participant_id: subscription.connection.pc
            for participant_id, subscription in self._subscriptions.items()
            if subscription.connection is not None
        }

    def upload_connection(self) -> RTCPeerConnection | None:
        return self._publisher.pc if self._publisher is not None else None

    async def run(self) -> None:
        backend = self._backend
        async with aiohttp.ClientSession() as http:
            session = await JanusSession.connect(
                backend.config.janus.urls, http, backend.session_settings
            )
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(session.run(), name=f"janus-session-{session.id}")
                    await self._take_part(session, tasks)
            except BaseExceptionGroup as group:
                raise _first_failure(group) from None
            finally:
                await self._leave(session)

    async def _take_part(self, session: JanusSession, tasks: asyncio.TaskGroup) -> None:
        """Join, publish, subscribe to everyone, then follow the room until something ends."""
        backend = self._backend
        handle = await session.attach(PLUGIN)
        joined = await self._room.join(handle, backend.name)
        self._joined.set()
        backend.observer.call_state_changed(CallState.IN_CALL, self._room_name)
        private_id = joined.data.get("private_id")
        await self._publish(handle, tasks)
        for feed in feeds(joined.data):
            self._subscribe(session, feed, private_id, tasks)
        while True:
            event = await handle.events.get()
            if event.get("janus") in ("hangup", "detached"):
                raise PublisherLostError(f"Janus ended our upload: {event.get('reason', '')}")
            data = event.get("plugindata", {}).get("data", {})
            if data.get("videoroom") == "destroyed":
                raise PublisherLostError(f"room {self._room_name} was destroyed")
            for feed in feeds(data):
                self._subscribe(session, feed, private_id, tasks)
            left = gone(data)
            if left is not None:
                await self._unsubscribe(str(left))

    async def renegotiate(self) -> None:
        """Our upload, offered again with what we send now: Janus updates each subscriber
        of ours with a new offer of its own."""
        async with self._publishing:
            publisher, handle = self._publisher, self._publisher_handle
            if publisher is None or handle is None:
                return
            try:
                await self._offer(publisher, handle, "configure")
            except Exception as error:
                # Janus or aiortc refusing the new offer: published afresh, by rejoining.
                log.exception("renegotiating our upload")
                handle.deliver({"janus": "hangup", "reason": f"renegotiation failed: {error}"})

    async def _publish(self, handle: Handle, tasks: asyncio.TaskGroup) -> None:
        backend = self._backend
        if backend.media.audio is None and backend.media.video is None:
            return  # nothing to send: we only watch
        async with self._publishing:
            self._publisher = MediaConnection(
                "janus-publisher",
                configuration=self._configuration,
                media=backend.media,
                voice=backend.voice,
                tasks=tasks,
                on_state=functools.partial(_hang_up_on_failure, handle),
            )
            self._publisher_handle = handle
            await self._offer(self._publisher, handle, "publish")

    @staticmethod
    async def _offer(publisher: MediaConnection, handle: Handle, request: str) -> None:
        offer = await publisher.create_offer(receive=False)
        reply = await handle.message({"request": request}, _jsep(offer))
        if reply.jsep is None:
            raise PublisherLostError(f"Janus took our {request} request without an answer")
        await publisher.accept_answer(_description(reply.jsep))

    def _subscribe(
        self, session: JanusSession, feed: Feed, private_id: int | None, tasks: asyncio.TaskGroup
    ) -> None:
        existing = self._subscriptions.get(feed.participant_id)
        if existing is not None:
            existing.feed_changed(feed)
            return
        subscription = _Subscription(self._backend, self._room, feed, self._configuration)
        self._subscriptions[feed.participant_id] = subscription
        subscription.task = tasks.create_task(
            subscription.run(session, private_id, tasks), name=f"janus-feed-{feed.id}"
        )
        subscription.task.add_done_callback(lambda _: self._forget(subscription))

    def _forget(self, subscription: _Subscription) -> None:
        """An ended subscription (its feed gone before we got to it) is not the feed's any
        more: should the feed publish again, it is subscribed to again."""
        if self._subscriptions.get(subscription.participant.id) is subscription:
            del self._subscriptions[subscription.participant.id]

    async def _unsubscribe(self, participant_id: str) -> None:
        subscription = self._subscriptions.pop(participant_id, None)
        if subscription is not None and subscription.task is not None:
            subscription.task.cancel()
            with suppress(asyncio.CancelledError):
                await subscription.task

    async def _leave(self, session: JanusSession) -> None:
        """Closes our connections, then the session: Janus tells the others at once."""
        for participant_id in list(self._subscriptions):
            subscription = self._subscriptions.pop(participant_id)
            await subscription.close()
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = self._publisher_handle = None
        await session.destroy()


class _Subscription:
    """One remote publisher's media, on a subscriber handle of its own; redone if Janus
    hangs it up while the publisher is still there."""

    def __init__(
        self,
        backend: JanusBackend,
        room: Room,
        feed: Feed,
        configuration: RTCConfiguration,
    ) -> None:
        self._backend = backend
        self._room = room
        self._feed = feed
        self._configuration = configuration
        self.participant = Participant(id=feed.participant_id, name=feed.display)
        self.connection: MediaConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self._handle: Handle | None = None
        self._mids: frozenset[str] = frozenset()  # the feed's streams our subscription has

    def feed_changed(self, feed: Feed) -> None:
        """The publisher renegotiated: streams it started sending are added to ours (by the
        subscription's own loop, so that no request crosses the one subscribing)."""
        self._feed = feed
        if self._handle is not None:
            self._handle.deliver({"vcalld": FEED_CHANGED})

    async def run(
        self, session: JanusSession, private_id: int | None, tasks: asyncio.TaskGroup
    ) -> None:
        observer = self._backend.observer
        observer.participant_changed(self.participant)
        try:
            while True:
                try:
                    await self._receive(session, private_id, tasks)
                except JanusError as error:
                    if error.code == NO_SUCH_FEED:
                        return  # it left before we got to it
                    log.warning("subscribing to %s: %s", self.participant.name, error)
                except JanusConnectionError:
                    raise  # the session's end, not this subscription's
                except Exception:
                    # aiortc refusing Janus's SDP, say: this participant only, never the call.
                    log.exception("subscription to %s failed", self.participant.name)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
        finally:
            await self.close()
            observer.participant_left(self.participant.id)

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _receive(
        self, session: JanusSession, private_id: int | None, tasks: asyncio.TaskGroup
    ) -> None:
        """Until Janus hangs this subscription up."""
        handle = self._handle = await session.attach(PLUGIN)
        self.connection = MediaConnection(
            self.participant.id,
            configuration=self._configuration,
            media=NO_MEDIA,
            voice=self._backend.voice,
            tasks=tasks,
            on_track=remote_tracks_of(self._backend.observer, self.participant.id),
            on_state=self._connection_state,
        )
        try:
            await self._follow(handle, private_id)
        except JanusError:
            await handle.detach()
            raise
        finally:
            await self.close()
        # Cancelled, the handle goes with the session (detaching would wait on a reply).
        await handle.detach()

    async def _follow(self, handle: Handle, private_id: int | None) -> None:
        reply = await self._room.subscribe(handle, self._feed, private_id)
        self._mids = self._feed_mids(reply.data, self._feed.mids)
        await self._answer(handle, reply.jsep)
        await self._add_new_streams(handle)  # those it started while we subscribed
        while True:
            event = await handle.events.get()
            if event.get("vcalld") == FEED_CHANGED:
                await self._add_new_streams(handle)
            elif event.get("janus") == "hangup":
                reason = event.get("reason")
                log.warning(
                    "Janus hung up %s: %s; subscribing again", self.participant.name, reason
                )
                return
            if event.get("janus") == "trickle":
                await self._add_candidate(event.get("candidate"))
            elif event.get("jsep") is not None:  # the publisher changed what it sends
                await self._answer(handle, event["jsep"])

    async def _add_new_streams(self, handle: Handle) -> None:
        added = self._feed.mids - self._mids
        if added:
            reply = await self._room.add_streams(handle, self._feed, added)
            self._mids = self._feed_mids(reply.data, self._mids | added)
            await self._answer(handle, reply.jsep)

    def _feed_mids(self, data: dict[str, Any], assumed: frozenset[str]) -> frozenset[str]:
        """The feed's streams a subscription has, as Janus lists them (`assumed` if not)."""
        listed = [entry for entry in data.get("streams", []) if isinstance(entry, dict)]
        mids = {
            str(entry["feed_mid"])
            for entry in listed
            if "feed_mid" in entry and str(entry.get("feed_id")) == self.participant.id
        }
        return frozenset(mids) if listed else assumed

    async def _answer(self, handle: Handle, jsep: dict[str, object] | None) -> None:
        if jsep is None or jsep.get("type") != "offer" or self.connection is None:
            raise JanusError(0, f"no offer to subscribe to {self.participant.name}")
        answer = await self.connection.answer(_description(jsep))
        await handle.message({"request": "start"}, _jsep(answer))

    async def _add_candidate(self, candidate: object) -> None:
        if self.connection is None or not isinstance(candidate, dict):
            return
        if candidate.get("completed"):
            candidate = None
        try:
            await self.connection.pc.addIceCandidate(parse_candidate(candidate))
        except SignalError as error:
            log.warning("candidate from Janus for %s: %s", self.participant.name, error)

    def _connection_state(self, state: str) -> None:
        self.participant = self.participant.model_copy(update={"connection": state})
        self._backend.observer.participant_changed(self.participant)
        if self._handle is not None:
            _hang_up_on_failure(self._handle, state)


def _hang_up_on_failure(handle: Handle, state: str) -> None:
    """Our side of a connection failed (ICE consent lost, DTLS ended): treated as Janus
    hanging it up, which redoes a subscription and rejoins for our upload."""
    if state in ("failed", "closed"):
        handle.deliver({"janus": "hangup", "reason": f"our connection {state}"})


def _jsep(description: RTCSessionDescription) -> dict[str, object]:
    return {"type": description.type, "sdp": description.sdp}


def _description(jsep: dict[str, object]) -> RTCSessionDescription:
    sdp, kind = jsep.get("sdp"), jsep.get("type")
    if not isinstance(sdp, str) or kind not in ("offer", "answer"):
        raise JanusError(0, "Janus sent a description without type or sdp")
    return RTCSessionDescription(sdp=sdp, type=str(kind))


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    """What ended a session's task group: the first failure that is not a cancellation."""
    for failure in group.exceptions:
        if isinstance(failure, BaseExceptionGroup):
            return _first_failure(failure)
        if not isinstance(failure, asyncio.CancelledError):
            return failure
    return group
