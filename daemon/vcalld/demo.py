"""`vcalld demo`: room server, daemon with test sources, and optionally a second test device."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
from pathlib import Path
from typing import Any

import aioice.ice

from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer
from vcalld.service import serve

log = logging.getLogger(__name__)
STATUS_PERIOD_SECONDS = 2.0
PEER_TONE_HZ = 660.0
DEFAULT_SIZE = (640, 480)
DEFAULT_FPS = 30


def demo_config(
    port: int,
    room: str,
    device_id: str,
    control_dir: Path,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
) -> VcalldConfig:
    """The embedded default: loopback room server, test pattern and tone, no MQTT."""
    # Loopback as well as the LAN addresses, so a browser on this machine or the LAN can join.
    addresses = [*aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False), "127.0.0.1"]
    return VcalldConfig.model_validate(
        {
            "device": {"id": device_id},
            "call": {
                "server_url": f"ws://127.0.0.1:{port}/ws",
                "room": room,
                "ice_host_addresses": sorted(set(addresses)),
            },
            "video": {"width": size[0], "height": size[1], "fps": fps},
            "control": {"socket": str(control_dir / f"{device_id}.sock")},
        }
    )


async def run_demo(
    host: str,
    port: int,
    room: str,
    with_peer: bool,
    duration: float | None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
) -> bool:
    """Run until Ctrl-C or `duration`; with a peer, True only if its media really arrived.
    A smaller `size` and `fps` let two daemons share a slow board (or an emulated one)."""
    # Anonymous: the demo is for trying the product on this machine, on loopback by default.
    server = RoomServer(RoomServerConfig(host=host, port=port, anonymous=True))
    await server.start()
    with tempfile.TemporaryDirectory(prefix="vcalld-demo-") as control_dir:
        main = Daemon(
            demo_config(server.port, room, "demo-kiosk", Path(control_dir), size=size, fps=fps)
        )
        peer_config = demo_config(
            server.port, room, "demo-peer", Path(control_dir), size=size, fps=fps
        )
        peer_config.control.enabled = False
        peer_config.audio.tone_frequency_hz = PEER_TONE_HZ
        peer = Daemon(peer_config) if with_peer else None
        print(f"vcalld demo: open http://127.0.0.1:{server.port}/?room={room} in a browser")
        print(f"  control: vcallctl --socket {main.config.control.socket} state")
        print("  Ctrl-C leaves the call and stops.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(serve(main, handle_signals=False), name="demo-kiosk")
                if peer is not None:
                    tasks.create_task(peer.run(), name="demo-peer")
                reporter = tasks.create_task(_report(main), name="demo-status")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(duration):
                        await stop.wait()
                flowed = peer is None or _peer_media_arrived(main)
                for daemon in (main, peer):
                    if daemon is not None:
                        daemon.stop()
                reporter.cancel()
        finally:
            await server.stop()
    if peer is not None:
        print(f"vcalld demo: media from demo-peer {'arrived' if flowed else 'DID NOT arrive'}")
    return flowed


def _peer_media_arrived(daemon: Daemon) -> bool:
    """The kiosk decoded the peer's pattern at a real frame rate and heard its tone."""
    for stats in daemon.renderer.snapshot().values():
        video, audio = stats["video"], stats["audio"]
        frequency = audio.get("frequency_hz") or 0.0
        if video["pattern_frames"] > 0 and abs(frequency - PEER_TONE_HZ) < 5:
            return True
    return False


async def _report(daemon: Daemon) -> None:
    """A status line every few seconds, so the terminal shows the call is really flowing."""
    while True:
        await asyncio.sleep(STATUS_PERIOD_SECONDS)
        print(_status_line(daemon), flush=True)


def _status_line(daemon: Daemon) -> str:
    state = daemon.state.current
    media = daemon.renderer.snapshot()
    parts = [f"[{state.call}] room {state.room or '-'}: {len(state.participants)} remote"]
    for participant in state.participants:
        stats: dict[str, Any] = media.get(participant.id, {})
        video, audio = stats.get("video", {}), stats.get("audio", {})
        parts.append(
            f"{participant.name} ({participant.connection}): "
            f"{video.get('width', 0)}x{video.get('height', 0)} {video.get('fps', 0)} fps, "
            f"tone {audio.get('frequency_hz')} Hz {audio.get('level_dbfs')} dBFS, "
            f"{round(100 * (audio.get('coverage') or 0))}% arrived"
        )
    return " | ".join(parts)
