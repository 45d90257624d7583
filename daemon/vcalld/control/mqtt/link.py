"""paho-mqtt driven by the daemon's asyncio loop, with no network thread of its own.

The socket is watched with `loop.add_reader`/`add_writer` (the pattern of paho's
loop_asyncio example), so every paho callback runs on the loop thread. Only the blocking TCP
and TLS connect runs in a worker thread; the socket callbacks it triggers are handed back to
the loop with `call_soon_threadsafe`, in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from vcalld.backoff import backoff_seconds
from vcalld.config.models import MqttConfig

log = logging.getLogger(__name__)
CONNACK_SECONDS = 10.0
MISC_PERIOD_SECONDS = 1.0
FLUSH_SECONDS = 2.0
QUEUED_MESSAGES = 200
# CONNACK codes with which an MQTT 3.1.1 broker (1) or a v5 broker (132) refuses our protocol.
PROTOCOL_REFUSED = {1, 132}


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


def new_properties(packet_type: int) -> Properties:
    """paho's Properties constructor is untyped; one typed place to make them."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def apply_credentials(client: paho.Client, config: MqttConfig) -> None:
    """Username, password file and TLS from the `[mqtt]` section."""
    if config.username is not None:
        client.username_pw_set(config.username, config.password())
    tls = config.tls
    if tls.enabled:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )


def send_without_delay(sock: object) -> None:
    """paho writes a packet in pieces; with Nagle's algorithm each reply would wait for the
    broker's delayed ACK (measured: 88 ms per command round trip instead of ~1 ms)."""
    if isinstance(sock, socket.socket):  # TLS sockets too; paho's websockets are not
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BrokerRefusedError(Exception):
    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(f"broker refused the connection: {reason}")
        self.reason = reason


class MqttLink:
    """One broker connection that stays up: reconnects with backoff, keeps a persistent
    session so QoS 1 commands wait at the broker while the device is away."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        will: tuple[str, str],
        on_connected: Callable[[], None],
        on_message: Callable[[Message], None],
        on_status: Callable[[str], None],
    ) -> None:
        """`on_status` hears "connected" or why not, for the device state and the journal."""
        self._config = config
        self._client_id = client_id
        self._will = will
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_status = on_status
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._client: paho.Client | None = None
        self._dialled = False  # connect() done once on this client; later attempts reconnect()
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._lost = asyncio.Event()
        self._published = asyncio.Event()
        # Bounded: during a long outage only the newest messages are worth sending.
        self._backlog: deque[tuple[str, str | bytes, int, bool, bytes | None]] = deque(
            maxlen=QUEUED_MESSAGES
        )
        self.protocol = "3.1.1" if config.protocol == "3.1.1" else "5"
        self.connected = False
        self._closing = False

    async def run(self) -> None:
        """Stay connected until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        attempt = 0
        while True:
            try:
                await self._session()
                attempt = 0
            except BrokerRefusedError as refused:
                if self._should_fall_back(refused.reason):
                    log.warning("broker refuses MQTT 5; falling back to MQTT 3.1.1")
                    self.protocol, self._client, self._dialled = "3.1.1", None, False
                    continue
                log.error("%s", refused)
                self._on_status(f"refused: {refused.reason}")
            except (OSError, TimeoutError) as error:
                reason = str(error) or type(error).__name__
                log.warning(
                    "MQTT broker %s:%d unreachable: %s",
                    self._config.host,
                    self._config.port,
                    reason,
                )
                self._on_status(f"unreachable: {reason}")
            delay = backoff_seconds(
                attempt, self._config.reconnect_min_seconds, self._config.reconnect_max_seconds
            )
            await asyncio.sleep(delay)
            attempt += 1

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        correlation_data: bytes | None = None,
    ) -> paho.MQTTMessageInfo | None:
        """Send a message, or, while disconnected, keep a QoS 1 one for the next connection
        (the newest QUEUED_MESSAGES of them). paho is not touched then: a worker thread may be
        inside its connect(), and a PUBLISH queued ahead of the CONNECT makes the broker drop
        the connection (seen as "closed before CONNACK")."""
        if self._client is None or not self.connected:
            if qos > 0:
                self._backlog.append((topic, payload, qos, retain, correlation_data))
            return None
        properties = None
        if correlation_data is not None and self.protocol == "5":
            properties = new_properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation_data
        return self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def subscribe(self, topics: list[str]) -> None:
        if self._client is not None and topics:
            self._client.subscribe([(topic, 1) for topic in topics])

    async def disconnect(self, pending: list[paho.MQTTMessageInfo | None]) -> None:
        """Disconnect cleanly (no Last Will) once `pending` are acknowledged, or time is up."""
        if self._client is None or not self.connected:
            return
        try:
            async with asyncio.timeout(FLUSH_SECONDS):
                while not all(info is None or info.is_published() for info in pending):
                    self._published.clear()
                    await self._published.wait()
        except TimeoutError:
            log.warning("MQTT: last messages not acknowledged within %.0f s", FLUSH_SECONDS)
        self._closing = True
        self._client.disconnect()
        try:
            async with asyncio.timeout(FLUSH_SECONDS):
                await self._lost.wait()
        except TimeoutError:
            log.warning("MQTT: broker did not close the connection")

    async def _session(self) -> None:
        assert self._loop is not None
        client = self._client = self._client or self._new_client()
        self._connack = self._loop.create_future()
        self._lost.clear()
        await asyncio.to_thread(self._connect, client)
        async with asyncio.timeout(CONNACK_SECONDS):
            reason = await self._connack
        if reason.is_failure:
            client.disconnect()
            raise BrokerRefusedError(reason)
        log.info(
            "connected to MQTT broker %s:%d (MQTT %s)",
            self._config.host,
            self._config.port,
            self.protocol,
        )
        self.connected = True
        while self._backlog:
            topic, payload, qos, retain, correlation_data = self._backlog.popleft()
            self.publish(topic, payload, qos=qos, retain=retain, correlation_data=correlation_data)
        self._on_status("connected")
        try:
            self._on_connected()
            while not self._lost.is_set():
                try:
                    async with asyncio.timeout(MISC_PERIOD_SECONDS):
                        await self._lost.wait()
                except TimeoutError:
                    client.loop_misc()  # keepalive pings and their timeout
        finally:
            self.connected = False

    def _connect(self, client: paho.Client) -> None:
        """Blocking: DNS, TCP and TLS; runs in a worker thread."""
        keepalive = self._config.keepalive_seconds
        if self._dialled:
            client.reconnect()  # same client: in-flight QoS 1 messages are resent
        elif self.protocol == "5":
            properties = new_properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._config.session_expiry_seconds
            client.connect(
                self._config.host,
                self._config.port,
                keepalive,
                clean_start=False,
                properties=properties,
            )
        else:
            client.connect(self._config.host, self._config.port, keepalive)
        self._dialled = True

    def _new_client(self) -> paho.Client:
        v5 = self.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
        )
        apply_credentials(client, self._config)
        topic, payload = self._will
        client.will_set(topic, payload, qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = lambda *_: self._published.set()
        client.on_socket_open = self._socket_opened
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._done_writing
        return client

    def _should_fall_back(self, reason: ReasonCode) -> bool:
        return (
            self._config.protocol == "auto"
            and self.protocol == "5"
            and reason.value in PROTOCOL_REFUSED
        )

    # paho callbacks: on the loop thread, except the socket ones during a threaded connect.

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connected and not self._closing:
            log.warning("MQTT connection lost: %s", reason)
            self._on_status(f"lost: {reason}")
        self._lost.set()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectionError(f"closed before CONNACK: {reason}"))

    def _handle_message(self, client: paho.Client, userdata: Any, raw: paho.MQTTMessage) -> None:
        properties = getattr(raw, "properties", None)
        response_topic = getattr(properties, "ResponseTopic", None)
        correlation_data = getattr(properties, "CorrelationData", None)
        self._on_message(
            Message(
                topic=raw.topic,
                payload=bytes(raw.payload),
                retain=bool(raw.retain),
                response_topic=response_topic or None,
                correlation_data=correlation_data,
            )
        )

    def _socket_opened(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        send_without_delay(sock)
        self._on_loop(self._watch, sock.fileno())

    def _socket_closed(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # The fd is read now: by the time the loop runs the callback, paho has closed it.
        self._on_loop(self._unwatch, sock.fileno())

    def _want_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._watch_writes, sock.fileno())

    def _done_writing(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._on_loop(self._loop.remove_writer, sock.fileno())

    def _on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _watch(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.add_reader(fd, self._read)

    def _unwatch(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)

    def _watch_writes(self, fd: int) -> None:
        assert self._loop is not None and self._client is not None
        self._loop.add_writer(fd, self._client.loop_write)

    def _read(self) -> None:
        client = self._client
        if client is None:
            return
        client.loop_read()
        # TLS may hold decrypted bytes that select() cannot see; read them now.
        sock = client.socket()
        if isinstance(sock, ssl.SSLSocket) and sock.pending() and self._loop is not None:
            self._loop.call_soon(self._read)
