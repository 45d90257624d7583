"""MQTT command round trip: publish to reply, for a `vcalld run` process on loopback.

The baseline in the same run is the broker alone: the same client publishing to a topic it
subscribes to, so the difference is what vcalld adds (parse, execute, reply). Commands are
sent one at a time over MQTT 5 with a response topic and correlation data, through mosquitto
with `set_tcp_nodelay true` and with its default (Nagle's algorithm on), because that one
broker option decides whether a round trip takes about 1 ms or about 45 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.table import markdown_table
from tests.mqtt import BlockingRequester, Mosquitto, vcalld_on_broker

DEVICE = "vcalld/bench"
REPLIES = "bench/replies"
ECHO = "bench/echo"


def summary(broker: str, name: str, seconds: list[float]) -> list[str]:
    ms = sorted(1000 * s for s in seconds)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    return [
        broker,
        name,
        str(len(ms)),
        f"{statistics.median(ms):.2f}",
        f"{p99:.2f}",
        f"{ms[-1]:.2f}",
    ]


def measure(commands: int, tcp_nodelay: bool) -> list[list[str]]:
    """Rows for one broker configuration: mosquitto with or without `set_tcp_nodelay`."""
    broker_name = f"set_tcp_nodelay {'true' if tcp_nodelay else 'false (default)'}"
    with tempfile.TemporaryDirectory(prefix="vcalld-bench-") as folder:
        broker = Mosquitto(Path(folder), tcp_nodelay=tcp_nodelay)
        broker.start()
        try:
            with vcalld_on_broker(Path(folder), broker, "bench", REPLIES) as (_, client):
                client.subscribe(ECHO)
                echo = [client.round_trip(ECHO, b"{}", ECHO)[0] for _ in range(commands)]
                get_state = [command(client, "get-state", {}) for _ in range(commands)]
                mute = [
                    command(client, "set-mute", {"audio": bool(n % 2)}) for n in range(commands)
                ]
        finally:
            broker.stop()
    return [
        summary(broker_name, "broker alone (publish to own subscription)", echo),
        summary(broker_name, "vcalld get-state", get_state),
        summary(broker_name, "vcalld set-mute (state change, retained publish)", mute),
    ]


def command(client: BlockingRequester, name: str, arguments: dict[str, Any]) -> float:
    seconds, reply = client.round_trip(f"{DEVICE}/command/{name}", json.dumps(arguments).encode())
    if not json.loads(reply)["ok"]:
        raise RuntimeError(f"{name} failed: {reply!r}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=1000)
    args = parser.parse_args()
    rows = [*measure(args.commands, tcp_nodelay=True), *measure(args.commands, False)]
    header = ["mosquitto", "round trip", "n", "median ms", "p99 ms", "max ms"]
    print("MQTT 5, QoS 1, mosquitto on loopback, one command at a time")
    print(markdown_table(header, rows))
    print(f"reproduce: make bench-mqtt BENCH_ARGS='--commands {args.commands}'")


if __name__ == "__main__":
    main()
