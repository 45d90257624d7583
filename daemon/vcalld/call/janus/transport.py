"""Janus's two API transports: a WebSocket, or HTTP with long polling where a proxy lets no
WebSocket through. Both carry the same JSON messages; the session matches replies."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import aiohttp

HEARTBEAT_SECONDS = 10.0
POST_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Janus holds a long poll open for up to 30 s before answering with a keepalive.
POLL_TIMEOUT = aiohttp.ClientTimeout(total=45)
POLL_EVENTS = 10
Message = dict[str, Any]


class JanusConnectionError(ConnectionError):
    """The transport could not reach Janus, or its connection ended."""


class Transport(Protocol):
    url: str

    async def send(self, message: Message) -> Message | None:
        """Sends one request; returns Janus's reply when the transport carries it back
        at once (HTTP), None when it arrives through `receive` (WebSocket)."""

    async def receive(self) -> list[Message]:
        """The next messages Janus sent on its own: events, and replies that came later."""

    def session_created(self, session_id: int) -> None:
        """From now on events belong to `session_id`."""

    async def close(self) -> None: ...


async def open_transport(url: str, http: aiohttp.ClientSession) -> Transport:
    if url.startswith(("ws://", "wss://")):
        try:
            websocket = await http.ws_connect(
                url, protocols=("janus-protocol",), heartbeat=HEARTBEAT_SECONDS
            )
        except (aiohttp.ClientError, OSError) as error:
            raise JanusConnectionError(f"{url}: {error or type(error).__name__}") from error
        return WebSocketTransport(url, websocket)
    return LongPollTransport(url, http)


class WebSocketTransport:
    def __init__(self, url: str, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.url = url
        self._websocket = websocket

    async def send(self, message: Message) -> None:
        try:
            await self._websocket.send_json(message)
        except (aiohttp.ClientError, ConnectionError) as error:
            raise JanusConnectionError(f"{self.url}: {error}") from error

    async def receive(self) -> list[Message]:
        while True:
            frame = await self._websocket.receive()
            if frame.type == aiohttp.WSMsgType.TEXT:
                return _messages(frame.data)
            if frame.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise JanusConnectionError(
                    f"{self.url}: connection closed ({self._websocket.close_code})"
                )

    def session_created(self, session_id: int) -> None:
        """A WebSocket carries every event of the sessions made on it."""

    async def close(self) -> None:
        await self._websocket.close()


class LongPollTransport:
    """Requests are POSTs to the session's and handle's paths; events come from a GET that
    Janus answers when it has some."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self._http = http
        self._session_id: int | None = None
        self._created = asyncio.Event()

    async def send(self, message: Message) -> Message:
        path = self.url
        for key in ("session_id", "handle_id"):
            if key in message:
                path += f"/{message[key]}"
        try:
            async with self._http.post(path, json=message, timeout=POST_TIMEOUT) as response:
                text = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise JanusConnectionError(f"{path}: {error or type(error).__name__}") from error
        replies = _messages(text)
        if len(replies) != 1:
            raise JanusConnectionError(f"{path}: expected one reply, got {text[:200]!r}")
        return replies[0]

    async def receive(self) -> list[Message]:
        await self._created.wait()
        path = f"{self.url}/{self._session_id}"
        try:
            async with self._http.get(
                path, params={"maxev": POLL_EVENTS}, timeout=POLL_TIMEOUT
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise JanusConnectionError(f"{path}: {error or type(error).__name__}") from error
        return _messages(text)

    def session_created(self, session_id: int) -> None:
        self._session_id = session_id
        self._created.set()

    async def close(self) -> None:
        """Nothing stays open between requests."""


def _messages(text: str) -> list[Message]:
    """Janus sends an object, or (long poll with maxev) a list of them."""
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise JanusConnectionError(f"not JSON from Janus: {text[:200]!r}") from error
    items = payload if isinstance(payload, list) else [payload]
    return [item for item in items if isinstance(item, dict)]
