"""`vcallctl`: control vcalld on this device (Unix socket) or any device of a fleet (MQTT).

Exit codes: 0 done, 1 the device answered with an error, 2 bad usage, 69 the daemon or broker
cannot be reached, 75 no answer in time, 78 a bad config file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from vcalld.config import DEFAULT_PATH, EX_CONFIG, ConfigError, load_config
from vcalld.config.models import ControlConfig, MqttConfig
from vcalld.control.client import control_request, watch_local
from vcalld.control.mqtt.remote import RemoteDevice, RemoteError, RemoteTimeoutError

EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
READS = "state, media, stats, watch"
DEFAULT_STATS_INTERVAL = 5.0


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vcallctl",
        description="Send a command to vcalld and print its JSON reply, or read its state. "
        "vcallctl's own options come before the command; the command's arguments follow "
        "it as --name value (read as JSON when they parse, else as text). Examples: "
        "vcallctl join --room lobby; vcallctl --device kiosk-1 set-mute --audio true; "
        "vcallctl --device kiosk-1 watch --count 10.",
        epilog=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    parser.add_argument(
        "--socket", type=Path, default=ControlConfig().socket, help="the local daemon's socket"
    )
    remote = parser.add_argument_group("a device over MQTT")
    remote.add_argument("--device", help="device id; talk to it through the MQTT broker")
    remote.add_argument(
        "--config",
        type=Path,
        help=f"vcalld config whose [mqtt] section reaches the broker ({DEFAULT_PATH} if present)",
    )
    remote.add_argument("--broker", metavar="HOST[:PORT]", help="overrides the config's broker")
    remote.add_argument(
        "--expire-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a device that is offline now drops the command if it returns later than this",
    )
    parser.add_argument("command", help=f"a command (join, leave, set-mute, ...) or {READS}")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="--name value ...")
    args = parser.parse_args(argv)
    try:
        arguments = command_arguments(args.arguments)
        if args.device is None:
            return asyncio.run(_local(args, arguments))
        with RemoteDevice(_mqtt_config(args), args.device) as device:
            return _remote(device, args, arguments)
    except UsageError as error:
        parser.error(str(error))
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except RemoteTimeoutError as error:
        return _fail(str(error), EX_TEMPFAIL)
    except RemoteError as error:
        return _fail(str(error), EX_UNAVAILABLE)
    except (OSError, aiohttp.ClientError, TimeoutError) as error:
        reason = _why_unreachable(error)
        return _fail(f"cannot reach vcalld at {args.socket}: {reason}", EX_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130


def _why_unreachable(error: BaseException) -> str:
    """The operating system's reason, not aiohttp's repr of its connection key."""
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror} (is the daemon running? systemctl status vcalld)"
    return str(error) or type(error).__name__


def command_arguments(words: list[str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if len(words) % 2:
        raise UsageError(f"arguments come as --name value pairs, got {' '.join(words)!r}")
    for name, value in zip(words[::2], words[1::2], strict=True):
        if not name.startswith("--"):
            raise UsageError(f"expected --name before {value!r}, got {name!r}")
        try:
            arguments[name[2:].replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            arguments[name[2:].replace("-", "_")] = value
    return arguments


async def _local(args: argparse.Namespace, arguments: dict[str, Any]) -> int:
    if args.command == "watch":
        count, interval = _watch_options(arguments, stats_interval=True)
        return await _print_stream(watch_local(args.socket, interval), count)
    limits = aiohttp.ClientTimeout(args.timeout)
    status, reply = await control_request(args.socket, args.command, arguments, limits)
    _print(reply)
    return 0 if status == 200 else 1


def _remote(device: RemoteDevice, args: argparse.Namespace, arguments: dict[str, Any]) -> int:
    topics = device.topics
    if args.command == "state":
        return _remote_state(device)
    if args.command == "stats":
        # Published every stats_interval_seconds during a call; not retained.
        stats = next(device.watch([topics.stats], idle_timeout=args.timeout))
        _print(json.loads(stats.payload))
        return 0
    if args.command == "watch":
        count, _ = _watch_options(arguments, stats_interval=False)
        feed = device.watch([topics.availability, topics.event, topics.stats])
        return _print_lines(({_leaf(m.topic): _decoded(m.payload)} for m in feed), count)
    if args.command == "media":
        raise UsageError("media is only on the local socket (run vcallctl on the device)")
    reply = device.request(args.command, arguments, args.timeout, args.expire_after)
    _print(reply)
    return 0 if reply.get("ok") else 1


def _remote_state(device: RemoteDevice) -> int:
    topics = device.topics
    state = device.retained(topics.state)
    if state is None:
        return _fail(f"no state retained on {topics.state}: unknown device?", EX_UNAVAILABLE)
    availability = (device.retained(topics.availability) or b"unknown").decode(errors="replace")
    if availability != "online":
        print(f"vcallctl: {topics.device_id} is {availability}; its last state:", file=sys.stderr)
    _print(json.loads(state))
    return 0


def _mqtt_config(args: argparse.Namespace) -> MqttConfig:
    path = args.config or (DEFAULT_PATH if DEFAULT_PATH.exists() else None)
    config = load_config(path).mqtt if path is not None else MqttConfig()
    if args.broker is not None:
        host, _, port = args.broker.rpartition(":") if ":" in args.broker else (args.broker, "", "")
        try:
            config = MqttConfig.model_validate(
                {**config.model_dump(), "host": host, "port": int(port or config.port)}
            )
        except ValueError as error:
            raise UsageError(f"--broker: {args.broker!r} is not HOST[:PORT]: {error}") from None
    return config


def _watch_options(arguments: dict[str, Any], stats_interval: bool) -> tuple[int | None, float]:
    known = {"count", "stats_interval"} if stats_interval else {"count"}
    unknown = sorted(arguments.keys() - known)
    if unknown:
        raise UsageError(f"watch takes {', '.join('--' + k for k in sorted(known))}: not {unknown}")
    count = arguments.get("count")
    interval = arguments.get("stats_interval", DEFAULT_STATS_INTERVAL)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise UsageError("--count must be a whole number above 0")
    if not isinstance(interval, int | float) or interval <= 0:
        raise UsageError("--stats-interval must be a number of seconds above 0")
    return count, float(interval)


async def _print_stream(items: AsyncIterator[dict[str, Any]], count: int | None) -> int:
    printed = 0
    async for item in items:
        _print_line(item)
        printed += 1
        if printed == count:
            return 0
    return _fail("the daemon closed the stream (stopped?)", EX_UNAVAILABLE)


def _print_lines(items: Iterator[dict[str, Any]], count: int | None) -> int:
    for printed, item in enumerate(items, start=1):
        _print_line(item)
        if printed == count:
            break
    return 0


def _print_line(item: dict[str, Any]) -> None:
    print(json.dumps({"time": round(time.time(), 3), **item}), flush=True)


def _print(body: Any) -> None:
    print(json.dumps(body, indent=2))


def _leaf(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


def _decoded(payload: bytes) -> Any:
    with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError):
        return json.loads(payload)
    return payload.decode(errors="replace")


def _fail(message: str, code: int) -> int:
    print(f"vcallctl: {message}", file=sys.stderr)
    return code
