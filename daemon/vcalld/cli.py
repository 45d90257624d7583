"""The `vcalld` command: run, check-config, devices, room-server, room-token, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from pathlib import Path

from vcalld import __version__
from vcalld.config import DEFAULT_PATH, EX_CONFIG, ConfigError, VcalldConfig, load_config, summary
from vcalld.demo import DEFAULT_FPS, DEFAULT_SIZE, run_demo
from vcalld.logs import setup_logging
from vcalld.media.alsa.devices import describe, list_audio_devices
from vcalld.media.camera.linux import LinuxCameraSystem
from vcalld.media.camera.listing import describe_cameras
from vcalld.plugins import add_plugin_directories
from vcalld.room import tokens
from vcalld.room.protocol import ROOM_PATTERN
from vcalld.room.server import RoomServer, UnguardedError
from vcalld.service import run_service


def vcalld_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vcalld", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vcalld {__version__}")
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=DEFAULT_PATH)
    check = commands.add_parser("check-config", help="validate a config file; exit 78 if bad")
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_PATH)
    commands.add_parser("devices", help="list the cameras, sound cards and PCMs of this machine")
    room = commands.add_parser("room-server", help="serve rooms and the browser client")
    room.add_argument("--config", type=Path, default=None)
    room.add_argument("--host")
    room.add_argument("--port", type=int)
    token = commands.add_parser("room-token", help="print a token that admits to one room")
    token.add_argument("--config", type=Path, default=DEFAULT_PATH)
    token.add_argument("--room", required=True)
    token.add_argument("--hours", type=float, default=24.0, help="how long it admits (default: 24)")
    demo = commands.add_parser("demo", help="room server + daemon with test sources")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--room", default="demo")
    demo.add_argument("--with-peer", action="store_true", help="add a second test device")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument(
        "--size", type=_video_size, default=DEFAULT_SIZE, metavar="WxH", help="video size"
    )
    demo.add_argument("--fps", type=int, default=DEFAULT_FPS, help="video frame rate")
    args = parser.parse_args(argv)
    add_plugin_directories()  # before a config names their plugins

    if args.action == "check-config":
        config = _load_or_report(args.file, starting=False)
        if config is None:
            return EX_CONFIG
        print(summary(args.file, config))
        return 0
    if args.action == "run":
        config = _load_or_report(args.config, starting=True)
        if config is None:
            return EX_CONFIG
        asyncio.run(run_service(args.config, config))
        return 0
    if args.action == "devices":
        print(describe_cameras(LinuxCameraSystem()))
        print(describe(list_audio_devices()))
        return 0
    if args.action == "room-server":
        return _run_room_server(args)
    if args.action == "room-token":
        return _print_room_token(args)
    setup_logging(VcalldConfig.model_validate({}).logging)
    flowed = asyncio.run(
        run_demo(
            args.host,
            args.port,
            args.room,
            args.with_peer,
            args.duration,
            size=args.size,
            fps=args.fps,
        )
    )
    return 0 if flowed else 1


def _video_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, got {text!r}")
    return int(width), int(height)


def _load_or_report(path: Path, starting: bool) -> VcalldConfig | None:
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        count = len(error.problems)
        outcome = "; not starting" if starting else ""
        print(
            f"vcalld: {count} error{'s' if count > 1 else ''} in {path}{outcome}", file=sys.stderr
        )
        return None


def _run_room_server(args: argparse.Namespace) -> int:
    if args.config is not None:
        config = _load_or_report(args.config, starting=True)
        if config is None:
            return EX_CONFIG
    else:
        config = VcalldConfig.model_validate({})
    setup_logging(config.logging)
    room_config = config.room_server.model_copy(
        update={
            key: value
            for key, value in (("host", args.host), ("port", args.port))
            if value is not None
        }
    )

    try:
        server = RoomServer(room_config)
    except UnguardedError as error:
        print(f"vcalld: {error}; not starting", file=sys.stderr)
        return EX_CONFIG

    async def serve_rooms() -> None:
        await server.start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_rooms())
    return 0


def _print_room_token(args: argparse.Namespace) -> int:
    """The token is all that is printed, so a script can take it as it is."""
    config = _load_or_report(args.config, starting=False)
    if config is None:
        return EX_CONFIG
    secret_file = config.room_server.token_secret_file
    if secret_file is None:
        print(f"vcalld: room_server.token_secret_file is not set in {args.config}", file=sys.stderr)
        return EX_CONFIG
    if not re.fullmatch(ROOM_PATTERN, args.room) or args.hours <= 0:
        print("vcalld: --room takes a room name and --hours a positive number", file=sys.stderr)
        return 2
    print(tokens.issue(tokens.read_secret(secret_file), args.room, args.hours * 3600))
    return 0
