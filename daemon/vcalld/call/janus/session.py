"""A Janus session and its plugin handles: requests matched to their replies by transaction,
events routed to the handle they concern, keepalives, and Janus's errors as exceptions."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from vcalld.call.janus.transport import JanusConnectionError, Message, Transport, open_transport

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = 15.0
HANDLE_EVENTS = 256
NO_SUCH_SESSION = 458
DETACH_TIMEOUT = 2.0


class JanusError(Exception):
    """Janus, or one of its plugins, refused a request."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class SessionLostError(JanusConnectionError):
    """Janus no longer knows our session (it restarted, or timed it out)."""


@dataclass(frozen=True)
class SessionSettings:
    """`token` (Janus's token_auth) and `api_secret` go into every request; a keepalive
    goes every `keepalive_seconds` (Janus ends a silent session after 60 s by default)."""

    token: str | None = None
    api_secret: str | None = None
    keepalive_seconds: float = 25.0

    def stamp(self, message: Message) -> Message:
        if self.token:
            message["token"] = self.token
        if self.api_secret:
            message["apisecret"] = self.api_secret
        return message


@dataclass(frozen=True)
class PluginReply:
    data: dict[str, Any]
    jsep: dict[str, Any] | None


class JanusSession:
    """Made by `connect`; `run()` must be running for requests to get their replies."""

    def __init__(self, transport: Transport, session_id: int, settings: SessionSettings) -> None:
        self.transport = transport
        self.id = session_id
        self._settings = settings
        self._pending: dict[str, tuple[asyncio.Future[Message], bool]] = {}
        self._handles: dict[int, Handle] = {}

    @classmethod
    async def connect(
        cls, urls: Sequence[str], http: aiohttp.ClientSession, settings: SessionSettings
    ) -> JanusSession:
        """A new session over the first of `urls` that answers (WebSocket first, then HTTP
        long polling, in the order configured)."""
        failures: list[str] = []
        for url in urls:
            transport = await _open(url, http, failures)
            if transport is None:
                continue
            try:
                created = await _create(transport, settings)
            except (JanusConnectionError, TimeoutError) as error:
                failures.append(f"{url}: {error or 'no answer'}")
                await transport.close()
                continue
            except BaseException:
                await transport.close()
                raise
            transport.session_created(created)
            log.info("Janus session %s over %s", created, url)
            return cls(transport, created, settings)
        raise JanusConnectionError("; ".join(failures))

    async def run(self) -> None:
        """Delivers what Janus sends and keeps the session alive; returns never, raises
        when the connection or the session is lost."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._keep_alive(), name=f"janus-keepalive-{self.id}")
            while True:
                for message in await self.transport.receive():
                    self._dispatch(message)

    async def attach(self, plugin: str) -> Handle:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = Handle(self, int(reply["data"]["id"]))
        self._handles[handle.id] = handle
        return handle

    async def request(self, message: Message, *, past_ack: bool = False) -> Message:
        """Janus's reply to `message`; `past_ack` waits for the event that follows an
        asynchronous plugin request's ack."""
        transaction = secrets.token_hex(8)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (future, past_ack)
        message = self._settings.stamp(
            {**message, "transaction": transaction, "session_id": self.id}
        )
        try:
            reply = await self.transport.send(message)
            if reply is not None:
                self._dispatch(reply)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await future
        finally:
            self._pending.pop(transaction, None)

    async def destroy(self) -> None:
        """Leaves at once, so the others see us go now rather than at a session timeout.
        Sent without waiting for the reply: nothing reads the connection any more."""
        message = {"janus": "destroy", "transaction": secrets.token_hex(8), "session_id": self.id}
        try:
            async with asyncio.timeout(DETACH_TIMEOUT):
                await self.transport.send(self._settings.stamp(message))
        except (JanusConnectionError, TimeoutError) as error:
            log.debug("destroying Janus session %s: %s", self.id, error)
        finally:
            await self.transport.close()

    def forget(self, handle: Handle) -> None:
        self._handles.pop(handle.id, None)

    def _dispatch(self, message: Message) -> None:
        kind = message.get("janus")
        waiting = self._pending.get(str(message.get("transaction")))
        if waiting is not None and not (kind == "ack" and waiting[1]):
            future = waiting[0]
            if future.done():
                return
            if kind == "error":
                error = message.get("error", {})
                future.set_exception(JanusError(error.get("code", 0), error.get("reason", "")))
            else:
                future.set_result(message)
            return
        if kind == "timeout":
            raise SessionLostError(f"Janus timed out session {self.id}")
        if kind == "error" and message.get("error", {}).get("code") == NO_SUCH_SESSION:
            raise SessionLostError(f"Janus no longer knows session {self.id}")
        handle = self._handles.get(message.get("sender", 0))
        if handle is not None:
            handle.deliver(message)
        elif kind not in ("ack", "success", "keepalive"):
            log.debug("Janus message for no handle of ours: %s", kind)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._settings.keepalive_seconds)
            try:
                await self.request({"janus": "keepalive"})
            except JanusError as error:
                raise SessionLostError(f"Janus session {self.id}: {error.reason}") from error


class Handle:
    """One attachment to a plugin; events not answering a request queue up in `events`."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self.events: asyncio.Queue[Message] = asyncio.Queue(HANDLE_EVENTS)

    async def message(self, body: dict[str, Any], jsep: Message | None = None) -> PluginReply:
        request: Message = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.session.request(request, past_ack=True)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(data["error_code"], data.get("error", ""))
        return PluginReply(data, reply.get("jsep"))

    async def detach(self) -> None:
        self.session.forget(self)
        try:
            async with asyncio.timeout(DETACH_TIMEOUT):
                await self.session.request({"janus": "detach", "handle_id": self.id})
        except (JanusError, JanusConnectionError, TimeoutError) as error:
            log.debug("detaching Janus handle %s: %s", self.id, error)

    def deliver(self, message: Message) -> None:
        try:
            self.events.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("Janus handle %s: events not read, dropping %s", self.id, message)


async def _open(url: str, http: aiohttp.ClientSession, failures: list[str]) -> Transport | None:
    try:
        return await open_transport(url, http)
    except JanusConnectionError as error:
        failures.append(str(error))
        return None


async def _create(transport: Transport, settings: SessionSettings) -> int:
    """The session's id; before a session exists the reply is the first message back."""
    transaction = secrets.token_hex(8)
    message = settings.stamp({"janus": "create", "transaction": transaction})
    async with asyncio.timeout(REQUEST_TIMEOUT):
        reply = await transport.send(message)
        while reply is None or reply.get("transaction") != transaction:
            replies = await transport.receive()
            reply = next((r for r in replies if r.get("transaction") == transaction), None)
    if reply.get("janus") != "success":
        error = reply.get("error", {})
        raise JanusError(error.get("code", 0), error.get("reason", str(reply)[:200]))
    return int(reply["data"]["id"])
