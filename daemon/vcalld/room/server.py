"""aiohttp room server: serves the browser client and relays signalling within rooms."""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from vcalld.config.models import RoomServerConfig
from vcalld.room import tokens
from vcalld.room.protocol import (
    Join,
    Leave,
    ProtocolError,
    Signal,
    error_message,
    parse_client_message,
)
from vcalld.room.rate import RateLimit
from vcalld.room.rooms import Member, Rooms

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
# aiohttp closes the socket (code 1009) above this; below it an oversized message gets an
# error reply and the connection lives on.
TRANSPORT_LIMIT_FACTOR = 4


class UnguardedError(ValueError):
    """Neither a token secret nor `anonymous`: the server will not guess which was meant."""


@dataclass
class _Session:
    ws: web.WebSocketResponse
    rate: RateLimit
    room: str | None = None
    member: Member[web.WebSocketResponse] | None = None
    dropped: int = 0  # messages over the rate


class RoomServer:
    def __init__(self, config: RoomServerConfig) -> None:
        if config.token_secret_file is None and not config.anonymous:
            raise UnguardedError(
                "room_server.token_secret_file is not set, so anyone who reaches the server "
                "could join any room: set it, or set room_server.anonymous = true"
            )
        self._config = config
        self._secret = (
            tokens.read_secret(config.token_secret_file) if config.token_secret_file else None
        )
        self._rooms: Rooms[web.WebSocketResponse] = Rooms(config.max_participants)
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = config.port

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/healthz", self._health)
        app.router.add_static("/static", STATIC_DIR)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        tls = self._tls_context()
        site = web.TCPSite(self._runner, self._config.host, self._config.port, ssl_context=tls)
        await site.start()
        self.port = self._runner.addresses[0][1]
        scheme = "https" if tls else "http"
        log.info("room server listening on %s://%s:%d/", scheme, self._config.host, self.port)
        if self._secret is None:
            log.warning("room server: anonymous, anyone who reaches it can join any room")

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._config.tls_cert_file is None or self._config.tls_key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._config.tls_cert_file, self._config.tls_key_file)
        return context

    async def stop(self) -> None:
        """Closes every WebSocket first, as going away (1001): aiohttp would otherwise wait
        for their handlers until its shutdown timeout (measured: 22 s), and the clients
        learn at once that they must rejoin."""
        if self._runner is not None:
            for ws in list(self._sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"room server stopping")
            await self._runner.cleanup()
            self._runner = None

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "rooms": self._rooms.counts()})

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request):
            log.warning(
                "room server: refused a WebSocket from %s (origin %s)", request.remote, origin
            )
            raise web.HTTPForbidden(text="origin not allowed")
        limit = self._config.max_message_bytes
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=limit * TRANSPORT_LIMIT_FACTOR)
        await ws.prepare(request)
        config = self._config
        session = _Session(ws, RateLimit(config.max_messages_per_second, config.message_burst))
        self._sockets.add(ws)
        try:
            async for message in ws:
                if not session.rate.allow():
                    await self._throttle(session, request)
                elif message.type == WSMsgType.TEXT:
                    await self._receive(session, message.data)
                elif message.type == WSMsgType.BINARY:
                    await _send(
                        ws, error_message("invalid-message", "binary messages not accepted")
                    )
        finally:
            self._sockets.discard(ws)
            await self._leave(session)
            if session.dropped:
                log.warning(
                    "room server: dropped %d messages from %s", session.dropped, request.remote
                )
        return ws

    def _origin_allowed(self, origin: str, request: web.Request) -> bool:
        """A page's own server, or one the config names: any other page could otherwise
        join rooms with its visitors' tokens and network position."""
        origin = origin.lower()
        return origin == f"{request.scheme}://{request.host}".lower() or (
            origin in self._config.allowed_origins
        )

    async def _throttle(self, session: _Session, request: web.Request) -> None:
        """A message over the rate is dropped with an error reply; logged once a connection."""
        if not session.dropped:
            log.warning("room server: %s sends too fast; dropping", request.remote)
        session.dropped += 1
        rate = self._config.max_messages_per_second
        await _send(session.ws, error_message("rate-limited", f"over {rate:g} messages/s"))

    async def _receive(self, session: _Session, text: str) -> None:
        try:
            if len(text.encode()) > self._config.max_message_bytes:
                raise ProtocolError(
                    "message-too-large",
                    f"message exceeds {self._config.max_message_bytes} bytes",
                )
            message = parse_client_message(text)
            if isinstance(message, Join):
                await self._join(session, message)
            elif isinstance(message, Leave):
                await self._leave(session)
            elif isinstance(message, Signal):
                await self._relay(session, message)
        except ProtocolError as error:
            await _send(session.ws, error_message(error.code, str(error)))
        except Exception:
            log.exception("room server: unexpected failure handling a message")
            await _send(session.ws, error_message("internal-error", "message not processed"))

    async def _join(self, session: _Session, message: Join) -> None:
        if session.member is not None:
            raise ProtocolError("already-joined", f"already in room {session.room!r}")
        if self._secret is not None:
            if message.token is None:
                raise ProtocolError("unauthorized", f"room {message.room!r} takes a token")
            try:
                tokens.check(self._secret, message.token, message.room)
            except tokens.TokenError as error:
                log.warning(
                    "room server: %s refused for room %s: %s", message.name, message.room, error
                )
                raise ProtocolError("unauthorized", str(error)) from None
        member, others = self._rooms.join(message.room, message.name, session.ws)
        session.room, session.member = message.room, member
        log.info("%s (%s) joined room %s", member.name, member.id, message.room)
        await _send(
            session.ws,
            {
                "type": "joined",
                "room": message.room,
                "id": member.id,
                "participants": [other.describe() for other in others],
                "ice_servers": [
                    server.model_dump(exclude_none=True) for server in self._config.ice_servers
                ],
            },
        )
        for other in others:
            await _send(
                other.link, {"type": "participant-joined", "participant": member.describe()}
            )

    async def _leave(self, session: _Session) -> None:
        if session.member is None or session.room is None:
            return
        member, room = session.member, session.room
        session.member = session.room = None
        log.info("%s (%s) left room %s", member.name, member.id, room)
        for other in self._rooms.leave(room, member.id):
            await _send(other.link, {"type": "participant-left", "id": member.id})

    async def _relay(self, session: _Session, message: Signal) -> None:
        if session.member is None or session.room is None:
            raise ProtocolError("not-in-room", "join a room before signalling")
        target = self._rooms.find(session.room, message.to)
        await _send(
            target.link, {"type": "signal", "from": session.member.id, "data": message.data}
        )


async def _send(ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
    """Send, tolerating a peer that is going away: its own handler cleans up after it."""
    if ws.closed:
        return
    try:
        await ws.send_str(json.dumps(payload))
    except ConnectionError:
        log.debug("room server: peer went away while sending")
