"""A real mosquitto on a free loopback port, and a paho client for tests to talk to devices."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from tests.helpers import wait_until_listening, write_daemon_config
from vcalld.control.mqtt.link import new_properties, send_without_delay

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
REPLY_SECONDS = 10.0
START_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mosquitto:
    """Debian's broker, loopback only, with persistence so sessions survive a restart.

    `tls` (CA, certificate, key) makes the listener TLS-only and requires client certificates,
    whose common name is the username with `identity_as_username` (no password then);
    `passwords` (user: password) turns anonymous access off; `acl_file` confines each user."""

    def __init__(
        self,
        folder: Path,
        *,
        tls: tuple[Path, Path, Path] | None = None,
        passwords: dict[str, str] | None = None,
        tcp_nodelay: bool = True,
        acl_file: Path | None = None,
        identity_as_username: bool = False,
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if passwords or identity_as_username else 'true'}",
            "persistence true",
            # Off by default in mosquitto: each reply then waits ~40 ms for the requester's
            # delayed ACK (bench/mqtt_latency.py measures both).
            f"set_tcp_nodelay {str(tcp_nodelay).lower()}",
            f"persistence_location {folder}/",
            f"log_dest file {folder}/mosquitto.log",
            # As root, mosquitto would switch to its own user and lose access to `folder`.
            "user root",
        ]
        if tls is not None:
            ca, certificate, key = tls
            lines += [
                f"cafile {ca}",
                f"certfile {certificate}",
                f"keyfile {key}",
                "require_certificate true",
            ]
            if identity_as_username:
                lines.append("use_identity_as_username true")
        if passwords:
            password_file = folder / "passwords"
            password_file.write_text("".join(f"{u}:{p}\n" for u, p in passwords.items()))
            subprocess.run([MOSQUITTO_PASSWD, "-U", str(password_file)], check=True)
            lines.append(f"password_file {password_file}")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Blocking until the broker accepts connections (async callers: `asyncio.to_thread`)."""
        self._process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)])
        wait_until_listening(self._process, (self.port,), START_SECONDS, self.log)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None

    def json(self) -> Any:
        return json.loads(self.payload)


class TestClient:
    """A fleet controller stand-in: paho on its own thread, messages handed to asyncio."""

    __test__ = False  # not a pytest class
    _ids = itertools.count(1)

    def __init__(
        self,
        port: int,
        protocol: str = "5",
        tls: tuple[Path, Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.protocol = protocol
        self._messages: dict[str, asyncio.Queue[Received]] = {}
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-client-{next(self._ids)}",
            protocol=paho.MQTTv5 if protocol == "5" else paho.MQTTv311,
        )
        self._client.on_message = self._on_message
        if tls is not None:
            ca, certificate, key = tls
            self._client.tls_set(ca_certs=str(ca), certfile=str(certificate), keyfile=str(key))
        if credentials is not None:
            self._client.username_pw_set(*credentials)
        self._client.connect("127.0.0.1", port, 30)
        self._client.loop_start()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        properties = getattr(message, "properties", None)
        received = Received(
            message.topic,
            bytes(message.payload),
            bool(message.retain),
            getattr(properties, "CorrelationData", None),
        )
        self._loop.call_soon_threadsafe(self._queue(message.topic).put_nowait, received)

    def _queue(self, topic: str) -> asyncio.Queue[Received]:
        return self._messages.setdefault(topic, asyncio.Queue())

    async def subscribe(self, topic: str) -> None:
        result, _ = self._client.subscribe(topic, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS
        await asyncio.sleep(0.2)  # let SUBACK and retained messages arrive

    async def next(self, topic: str, within: float = REPLY_SECONDS) -> Received:
        return await asyncio.wait_for(self._queue(topic).get(), within)

    def pending(self, topic: str) -> int:
        return self._queue(topic).qsize()

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = False, **props: Any
    ) -> None:
        properties = None
        if props and self.protocol == "5":
            properties = new_properties(PacketTypes.PUBLISH)
            for name, value in props.items():
                setattr(properties, name, value)
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS

    async def request(
        self, device_topic: str, name: str, arguments: dict[str, Any] | bytes | None = None
    ) -> dict[str, Any]:
        """Send a command the protocol's way and return the reply."""
        number = next(self._ids)
        reply_topic = f"test/replies/{number}"
        await self.subscribe(reply_topic)
        if isinstance(arguments, bytes):
            payload = arguments
        elif self.protocol == "5":
            payload = json.dumps(arguments or {}).encode()
        else:
            payload = json.dumps(
                {**(arguments or {}), "reply_to": reply_topic, "id": number}
            ).encode()
        correlation = f"corr-{number}".encode()
        self.publish(
            f"{device_topic}/command/{name}",
            payload,
            ResponseTopic=reply_topic,
            CorrelationData=correlation,
        )
        reply = await self.next(reply_topic)
        if self.protocol == "5":
            assert reply.correlation_data == correlation
        body: dict[str, Any] = reply.json()
        return body


class BlockingRequester:
    """MQTT 5 requests one at a time from a plain thread, for the bench and the fuzz test,
    which time and count round trips by the thousand."""

    def __init__(self, port: int, reply_topic: str, also: tuple[str, ...] = ()) -> None:
        self.reply_topic = reply_topic
        self._arrivals: queue.Queue[Received] = queue.Queue()
        self._numbers = itertools.count(1)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_message = self._on_message
        # Like vcalld itself: without TCP_NODELAY each request waits for the broker's delayed
        # ACK of the previous reply's PUBACK, and we would measure Nagle's algorithm.
        self._client.on_socket_open = lambda _client, _userdata, sock: send_without_delay(sock)
        self._client.connect("127.0.0.1", port)
        self._client.subscribe([(topic, 1) for topic in (reply_topic, *also)])
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        self._arrivals.put(
            Received(message.topic, bytes(message.payload), bool(message.retain), correlation)
        )

    def subscribe(self, topic: str) -> None:
        """Active for every later publish: the broker handles one connection's packets in order."""
        self._client.subscribe(topic, qos=1)

    def wait_for(self, topic: str, payload: bytes) -> None:
        while True:
            arrived = self._arrivals.get(timeout=REPLY_SECONDS)
            if (arrived.topic, arrived.payload) == (topic, payload):
                return

    def round_trip(
        self, topic: str, payload: bytes, answer_topic: str | None = None
    ) -> tuple[float, bytes]:
        """(seconds, payload) from publishing to the answer with our correlation data, which
        arrives on the reply topic unless `answer_topic` says otherwise."""
        properties = new_properties(PacketTypes.PUBLISH)
        correlation = next(self._numbers).to_bytes(8, "big")
        properties.ResponseTopic = self.reply_topic
        properties.CorrelationData = correlation
        started = time.perf_counter()
        self._client.publish(topic, payload, qos=1, properties=properties)
        while True:
            arrived = self._arrivals.get(timeout=REPLY_SECONDS)
            if arrived.topic == (answer_topic or self.reply_topic) and (
                arrived.correlation_data == correlation
            ):
                return time.perf_counter() - started, arrived.payload

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@contextmanager
def vcalld_on_broker(
    folder: Path, broker: Mosquitto, device_id: str, reply_topic: str, mqtt: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], BlockingRequester]]:
    """A `vcalld run` process in no call, online on `broker`, and a requester to command it.
    `mqtt` is more TOML for its `[mqtt]` section."""
    config, _ = write_daemon_config(
        folder,
        device_id,
        9,
        auto_join=False,
        extra=f"[mqtt]\nenabled = true\nport = {broker.port}\n{mqtt}",
    )
    availability = f"vcalld/{device_id}/availability"
    with (folder / f"{device_id}.log").open("wb") as log:
        vcalld = Path(sys.executable).parent / "vcalld"
        process = subprocess.Popen([str(vcalld), "run", "--config", str(config)], stderr=log)
        requester = BlockingRequester(broker.port, reply_topic, also=(availability,))
        try:
            requester.wait_for(availability, b"online")
            yield process, requester
        finally:
            requester.close()
            process.terminate()
            process.wait(10)


class Mqtt311OnlyFront:
    """Stands in front of mosquitto and answers an MQTT 5 CONNECT the way a 3.1.1-only broker
    does (CONNACK 0x01, unacceptable protocol version); MQTT 3.1.1 passes through untouched."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self.port = 0
        self.refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(1)
        length_bytes = b""
        while not length_bytes or length_bytes[-1] & 0x80:
            length_bytes += await reader.readexactly(1)
        start = await reader.readexactly(7)  # protocol name (2 + 4 bytes) and level
        if start[6] == 5:
            self.refused += 1
            writer.write(b"\x20\x02\x00\x01")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        up_writer.write(header + length_bytes + start)
        for source, target in ((reader, up_writer), (up_reader, writer)):
            relay = asyncio.create_task(_pipe(source, target))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            target.write(data)
            await target.drain()
    except ConnectionError:
        pass
    finally:
        target.close()
