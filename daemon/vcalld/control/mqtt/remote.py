"""The fleet's side of the MQTT API: command a device and wait for its reply, read its
retained state, follow its events. `vcallctl --device` uses it; so can a fleet's own tools.

A short-lived client, so paho runs its own network thread here (unlike the daemon, which has
one asyncio loop to share); messages cross to the caller through bounded queues.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from vcalld.config.models import MqttConfig
from vcalld.control.mqtt.link import (
    PROTOCOL_REFUSED,
    Message,
    apply_credentials,
    new_properties,
    send_without_delay,
)
from vcalld.control.mqtt.topics import Topics

CONNECT_SECONDS = 10.0
# A retained message arrives right after SUBACK; this long without one means there is none.
RETAINED_GRACE_SECONDS = 0.5
INBOX_SIZE = 1000


class RemoteError(Exception):
    """The broker cannot be reached, refused us, or dropped the connection."""


class RemoteTimeoutError(RemoteError):
    """The device did not answer in time."""


class RemoteDevice:
    """One device's topic tree on one broker connection; use as a context manager."""

    def __init__(self, config: MqttConfig, device_id: str) -> None:
        self._config = config
        self.topics = Topics(
            config.base_topic, device_id, config.group, config.homeassistant.discovery_prefix
        )
        self._client_id = f"vcallctl-{uuid.uuid4().hex[:12]}"
        # Under the base topic (where fleet ACLs grant access) but outside every device's tree:
        # device ids start with a letter or digit.
        self.reply_topic = f"{config.base_topic}/_replies/{self._client_id}"
        self.protocol = "3.1.1" if config.protocol == "3.1.1" else "5"
        self._client: paho.Client | None = None
        self._connack: queue.Queue[ReasonCode] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()  # paho's thread and the caller share the two maps below
        self._pending_subscriptions: dict[int, threading.Event] = {}
        self._inboxes: dict[str, queue.Queue[Message]] = {}
        self._replies: queue.Queue[Message] | None = None

    def __enter__(self) -> RemoteDevice:
        reason = self._connect()
        if reason.value in PROTOCOL_REFUSED and self._config.protocol == "auto":
            self._close()
            self.protocol = "3.1.1"
            reason = self._connect()
        if reason.is_failure:
            self._close()
            raise RemoteError(f"MQTT broker {self._address} refused the connection: {reason}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def request(
        self,
        name: str,
        arguments: dict[str, Any],
        timeout: float,
        expires_after: float | None = None,
    ) -> dict[str, Any]:
        """Send command `name` and return the device's reply. With `expires_after`, a device
        that is away now will not run the command if it comes back later than that."""
        if self._replies is None:
            self._replies = self._subscribe([self.reply_topic])
        request_id = uuid.uuid4().hex
        payload = dict(arguments)
        if expires_after is not None:
            payload["expires_at"] = round(time.time() + expires_after, 3)
        properties = None
        if self.protocol == "5":
            properties = new_properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = request_id.encode()
        else:
            payload |= {"reply_to": self.reply_topic, "id": request_id}
        self._publish(self.topics.command(name), json.dumps(payload), properties)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = self._replies.get(timeout=left)
            except queue.Empty:
                break
            body = _json_object(reply.payload)
            if request_id.encode() == reply.correlation_data or body.get("id") == request_id:
                body.pop("id", None)
                return body
        raise RemoteTimeoutError(f"no reply from {self.topics.device_id} within {timeout:g} s")

    def retained(self, topic: str) -> bytes | None:
        """The message retained on `topic`, or None if the broker holds none."""
        inbox = self._subscribe([topic])
        try:
            return inbox.get(timeout=RETAINED_GRACE_SECONDS).payload
        except queue.Empty:
            return None

    def watch(self, topics: list[str], idle_timeout: float | None = None) -> Iterator[Message]:
        """Messages on `topics` as they arrive, retained ones first, until the caller stops
        iterating. Raises `RemoteError` if the connection drops, `RemoteTimeoutError` after
        `idle_timeout` seconds without a message."""
        inbox = self._subscribe(topics)
        quiet_since = time.monotonic()
        while self._client is not None and self._client.is_connected():
            try:
                yield inbox.get(timeout=1.0)
                quiet_since = time.monotonic()
            except queue.Empty:
                if idle_timeout is not None and time.monotonic() - quiet_since > idle_timeout:
                    names = ", ".join(topics)
                    raise RemoteTimeoutError(f"nothing on {names} for {idle_timeout:g} s") from None
        raise RemoteError(f"lost the connection to MQTT broker {self._address}")

    # Connection.

    @property
    def _address(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    def _connect(self) -> ReasonCode:
        client = self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5 if self.protocol == "5" else paho.MQTTv311,
        )
        apply_credentials(client, self._config)
        client.on_socket_open = lambda _client, _userdata, sock: send_without_delay(sock)
        client.on_connect = lambda _c, _u, _f, reason, _p: self._connack.put(reason)
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        try:
            client.connect(self._config.host, self._config.port, self._config.keepalive_seconds)
        except (OSError, ValueError) as error:
            self._client = None
            raise RemoteError(f"cannot reach MQTT broker {self._address}: {error}") from None
        client.loop_start()
        try:
            return self._connack.get(timeout=CONNECT_SECONDS)
        except queue.Empty:
            self._close()
            raise RemoteError(f"no CONNACK from MQTT broker {self._address}") from None

    def _close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _subscribe(self, topics: list[str]) -> queue.Queue[Message]:
        """One inbox for `topics` (exact names, no wildcards), ready before the SUBACK."""
        assert self._client is not None
        inbox: queue.Queue[Message] = queue.Queue(maxsize=INBOX_SIZE)
        acknowledged = threading.Event()
        with self._lock:  # the SUBACK may arrive before subscribe() returns its message id
            for topic in topics:
                self._inboxes[topic] = inbox
            result, mid = self._client.subscribe([(topic, 1) for topic in topics])
            if mid is not None:
                self._pending_subscriptions[mid] = acknowledged
        if result != paho.MQTT_ERR_SUCCESS or not acknowledged.wait(CONNECT_SECONDS):
            raise RemoteError(f"MQTT broker {self._address} refused to subscribe to {topics}")
        return inbox

    def _publish(self, topic: str, payload: str, properties: Any) -> None:
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=1, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise RemoteError(f"cannot publish to {topic}: {paho.error_string(info.rc)}")

    # paho callbacks, on its network thread.

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        with self._lock:
            acknowledged = self._pending_subscriptions.pop(mid, None)
        if acknowledged is not None and not any(reason.is_failure for reason in reasons):
            acknowledged.set()

    def _on_message(self, client: paho.Client, userdata: Any, raw: paho.MQTTMessage) -> None:
        with self._lock:
            inbox = self._inboxes.get(raw.topic)
        if inbox is None:
            return
        properties = getattr(raw, "properties", None)
        message = Message(
            topic=raw.topic,
            payload=bytes(raw.payload),
            retain=bool(raw.retain),
            correlation_data=getattr(properties, "CorrelationData", None),
        )
        with contextlib.suppress(queue.Full):  # a reader that stopped reading loses the newest
            inbox.put_nowait(message)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}
