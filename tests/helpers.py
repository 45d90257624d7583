"""Helpers for tests that run daemons in the test's event loop."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiortc import RTCRtpTransceiver

from vcalld.call.stats import read_counters
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.events import state_events
from vcalld.media.sinks.recorder import Recorder
from vcalld.media.sources.base import VideoSource
from vcalld.service import serve
from vcalld.state import DeviceState


@contextmanager
def tiny_disk(folder: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted on `folder` (made here): a disk that fills within seconds of
    recording. Needs root, in a mount namespace of the test's own."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def recording_failure(recorder: Recorder) -> str | None:
    """Why a recording (running or ended) failed, if one did."""
    errors = [entry["recording"]["error"] for entry in recorder.snapshot().values()]
    errors += [stats.error for stats in recorder.finished()]
    return next((error for error in errors if error), None)


def loopback_config(
    device_id: str, folder: Path, port: int, room: str, **sections: dict[str, Any]
) -> VcalldConfig:
    """A device on loopback that meets others through the room server on `port`, its control
    socket in `folder`; each of `sections` is laid over these defaults (`call` too)."""
    document: dict[str, Any] = {
        "device": {"id": device_id},
        "call": {
            "server_url": f"ws://127.0.0.1:{port}/ws",
            "room": room,
            "ice_host_addresses": ["127.0.0.1"],
            "reconnect_max_seconds": 1.0,
        },
        "control": {"socket": str(folder / f"{device_id}.sock")},
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    return VcalldConfig.model_validate(document)


@asynccontextmanager
async def running(
    config: VcalldConfig, video_source: VideoSource | None = None
) -> AsyncIterator[Daemon]:
    daemon = Daemon(config, video_source=video_source)
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(daemon, ready.set, handle_signals=False), name=f"daemon-{config.device.id}"
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Any], within: float, period: float = 0.2) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; media are measured in
    other tasks and processes, so there is no event to wait on."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(period)


def received(daemon: Daemon, name: str) -> dict[str, Any]:
    """What `daemon`'s sink measured from the participant called `name`."""
    ids = [p.id for p in daemon.state.current.participants if p.name == name]
    snapshot = daemon.renderer.snapshot()
    return snapshot.get(ids[0], {}) if ids else {}


def video_transceiver(daemon: Daemon) -> RTCRtpTransceiver:
    """The video transceiver of `daemon`'s one connection."""
    (pc,) = daemon._backend.peer_connections().values()
    return next(t for t in pc.getTransceivers() if t.kind == "video")


MIN_FPS = 25
BIN = Path(sys.executable).parent
VCALLD_RUN = (BIN / "vcalld", "run")


def video_ok(
    stats: dict[str, Any], size: tuple[int, int] | None = (640, 480), min_fps: float = MIN_FPS
) -> bool:
    """At least `min_fps` of recognisable test pattern, at `size` if one is given."""
    video = stats.get("video", {})
    return bool(
        video.get("fps", 0) >= min_fps
        and video.get("pattern_frames", 0) > min_fps
        and (size is None or (video["width"], video["height"]) == size)
    )


def tone_ok(stats: dict[str, Any], tone_hz: float) -> bool:
    frequency = stats.get("audio", {}).get("frequency_hz")
    return frequency is not None and abs(frequency - tone_hz) < 5


async def assert_receives(
    daemon: Daemon,
    name: str,
    tone_hz: float,
    size: tuple[int, int] | None = (640, 480),
    min_fps: float = MIN_FPS,
) -> None:
    """`daemon`'s sink gets `name`'s test pattern at `min_fps` and its tone at the right pitch."""
    try:
        await eventually(lambda: video_ok(received(daemon, name), size, min_fps), 25)
        await eventually(lambda: tone_ok(received(daemon, name), tone_hz), 10)
    except TimeoutError:
        counters = [await read_counters(pc) for pc in daemon._backend.peer_connections().values()]
        raise AssertionError(f"from {name}: {received(daemon, name)}; {counters}") from None
    stats = received(daemon, name)
    video, audio = stats["video"], stats["audio"]
    assert video["pattern_frames"] >= 0.9 * video["stamped_frames"] > 0, stats
    assert audio["frequency_hz"] == pytest.approx(tone_hz, abs=5), stats
    assert audio["level_dbfs"] > -30, stats


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port for a block; yields its base URL (no trailing /)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def recording_events(daemon: Daemon) -> AsyncIterator[list[dict[str, Any]]]:
    """The events the daemon's state changes make (what MQTT publishes), during a block."""
    events: list[dict[str, Any]] = []
    last = [daemon.state.current]

    def listen(state: DeviceState) -> None:
        events.extend(state_events(last[0], state))
        last[0] = state

    daemon.state.listen(listen)
    try:
        yield events
    finally:
        daemon.state.unlisten(listen)


def write_daemon_config(  # noqa: PLR0917 - test helper, read at call sites by keyword
    folder: Path,
    device_id: str,
    server_port: int,
    room: str = "test",
    auto_join: bool = True,
    extra: str = "",
    room_secret_file: Path | None = None,
) -> tuple[Path, Path]:
    """A TOML config for a `vcalld run` process on loopback, plus `extra` TOML sections;
    returns (config, control socket)."""
    socket = folder / f"{device_id}.sock"
    config = folder / f"{device_id}.toml"
    secret = f'room_secret_file = "{room_secret_file}"\n' if room_secret_file else ""
    config.write_text(
        f'[device]\nid = "{device_id}"\n'
        f'[call]\nserver_url = "ws://127.0.0.1:{server_port}/ws"\nroom = "{room}"\n'
        f"auto_join = {str(auto_join).lower()}\n"
        f'ice_host_addresses = ["127.0.0.1"]\n{secret}'
        f'[control]\nsocket = "{socket}"\n' + extra
    )
    return config, socket


@asynccontextmanager
async def vcalld_process(
    config_file: Path,
    environment: dict[str, str] | None = None,
    program: Sequence[str | Path] = VCALLD_RUN,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The daemon's log goes to a file next to its config and is printed if the test fails;
    `environment` is added to ours. `program` is what runs with `--config` (a bench's own
    daemon runner, in place of `vcalld run`)."""
    log_file = config_file.with_suffix(".log")
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *program,
            "--config",
            str(config_file),
            stderr=log,
            env={**os.environ, **(environment or {})},
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        sys.stderr.write(log_file.read_text())


def wait_until_listening(
    process: subprocess.Popen[bytes], ports: Sequence[int], within: float, log: Callable[[], str]
) -> None:
    """Blocks until `process` accepts TCP connections on every port of 127.0.0.1 given;
    raises with its `log()` if it exits first or takes longer than `within` seconds."""
    deadline = time.monotonic() + within
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{process.args!r} did not start:\n{log()}") from None
                time.sleep(0.05)
