"""MQTT command round trip: publish to reply, for a `vcalld run` process on loopback.

The baseline in the same run is the broker alone: the same client publishing to a topic it
subscribes to, so the difference is what vcalld adds (parse, execute, reply). Commands are
sent one at a time over MQTT 5 with a response topic and correlation data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from tests.helpers import write_daemon_config
from tests.mqtt import Mosquitto
from vcalld.control.mqtt.link import new_properties

DEVICE = "vcalld/bench"
REPLIES = "bench/replies"
ECHO = "bench/echo"
TIMEOUT_SECONDS = 10.0


class Client:
    def __init__(self, port: int) -> None:
        self.arrivals: queue.Queue[tuple[str, bytes | None, bytes]] = queue.Queue()
        self._numbers = itertools.count(1)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_message = self._on_message
        # Like vcalld itself: without TCP_NODELAY every small packet after the first waits
        # for the broker's delayed ACK, and the bench would measure Nagle, not vcalld.
        self._client.on_socket_open = _no_delay
        self._client.connect("127.0.0.1", port)
        self._client.subscribe([(REPLIES, 1), (ECHO, 1), (f"{DEVICE}/availability", 1)])
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        self.arrivals.put((message.topic, correlation, bytes(message.payload)))

    def wait_for(self, topic: str, payload: bytes) -> None:
        while self.arrivals.get(timeout=TIMEOUT_SECONDS)[::2] != (topic, payload):
            pass

    def round_trip(self, topic: str, payload: bytes, reply_topic: str) -> float:
        properties = new_properties(PacketTypes.PUBLISH)
        correlation = next(self._numbers).to_bytes(8, "big")
        properties.ResponseTopic = REPLIES
        properties.CorrelationData = correlation
        started = time.perf_counter()
        self._client.publish(topic, payload, qos=1, properties=properties)
        while True:
            arrived, their_correlation, body = self.arrivals.get(timeout=TIMEOUT_SECONDS)
            if arrived == reply_topic and their_correlation == correlation:
                elapsed = time.perf_counter() - started
                if reply_topic == REPLIES and not json.loads(body)["ok"]:
                    raise RuntimeError(f"command failed: {body!r}")
                return elapsed

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def summary(name: str, seconds: list[float]) -> list[str]:
    ms = sorted(1000 * s for s in seconds)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    return [name, str(len(ms)), f"{statistics.median(ms):.2f}", f"{p99:.2f}", f"{ms[-1]:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vcalld-bench-") as folder:
        work = Path(folder)
        broker = Mosquitto(work)
        broker.start()
        config, _ = write_daemon_config(
            work,
            "bench",
            9,
            auto_join=False,
            extra=f"[mqtt]\nenabled = true\nport = {broker.port}\n",
        )
        log = (work / "vcalld.log").open("wb")
        vcalld = Path(sys.executable).parent / "vcalld"
        daemon = subprocess.Popen([str(vcalld), "run", "--config", str(config)], stderr=log)
        client = Client(broker.port)
        try:
            client.wait_for(f"{DEVICE}/availability", b"online")
            rows = []
            echo = [client.round_trip(ECHO, b"{}", ECHO) for _ in range(args.commands)]
            rows.append(summary("broker alone (publish to own subscription)", echo))
            get_state = [
                client.round_trip(f"{DEVICE}/command/get-state", b"", REPLIES)
                for _ in range(args.commands)
            ]
            rows.append(summary("vcalld get-state", get_state))
            mute = [
                client.round_trip(
                    f"{DEVICE}/command/set-mute",
                    json.dumps({"audio": bool(n % 2)}).encode(),
                    REPLIES,
                )
                for n in range(args.commands)
            ]
            rows.append(summary("vcalld set-mute (state change, retained publish)", mute))
        finally:
            client.close()
            daemon.terminate()
            daemon.wait(10)
            log.close()
            broker.stop()
    header = ["round trip", "n", "median ms", "p99 ms", "max ms"]
    lines = [header, ["---"] * len(header), *rows]
    print("MQTT 5, QoS 1, mosquitto on loopback, one command at a time")
    print("\n".join("| " + " | ".join(line) + " |" for line in lines))
    print(f"reproduce: make bench-mqtt BENCH_ARGS='--commands {args.commands}'")


if __name__ == "__main__":
    main()
