"""Faults a kiosk meets, one after another in one run, and how long each takes to heal.

Two daemons in a call through the room server on loopback: `kiosk` (the one faulted) and
`watcher`. After each fault the kiosk must be back in the call: the watcher receives its video
again and the kiosk receives the watcher's. Recovery is the time from the fault's end to both.
Faults that need a process of their own (SIGTERM, SIGKILL, a bad config on reload) are done to
a `vcalld run` process; the in-process daemons take the network and server faults; a kiosk
with devices of its own takes the device faults (bench/device_faults.py). The fault ends where
the table says: a restart's end, the network's return, the new process's start, the device's
return. Run it with `make bench-faults` (as root, in a private network namespace with only
loopback and a mount namespace of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.device_faults import device_faults
from bench.fault_call import (
    FLOW_WINDOW_SECONDS,
    RECOVERY_LIMIT_SECONDS,
    Call,
    Row,
    flowing,
    flowing_both_ways,
    seconds_until,
)
from bench.table import markdown_table
from tests.helpers import (
    eventually,
    running,
    vcalld_process,
    write_daemon_config,
)
from tests.janus import Janus, janus_call
from tests.lossy import Loss, impair
from tests.mqtt import Mosquitto, TestClient
from vcalld.config.models import RoomServerConfig
from vcalld.control.client import control_request
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer


async def janus_restart(call: Call) -> Row:
    """A kiosk and a watcher of their own in a Janus room that the first back re-creates."""
    janus = Janus(call.folder)
    await asyncio.to_thread(janus.start)
    try:
        through_janus = janus_call("4321")
        async with (
            running(call.config("j-kiosk", call=through_janus)) as kiosk,
            running(call.config("j-watcher", call=through_janus)) as watcher,
        ):
            both = functools.partial(flowing_both_ways, kiosk, watcher)
            await eventually(both, RECOVERY_LIMIT_SECONDS)
            await asyncio.to_thread(janus.stop)
            await asyncio.to_thread(janus.start)
            back = await seconds_until(both, time.monotonic())
    finally:
        await asyncio.to_thread(janus.stop)
    return Row("Janus restart", "restart", back, "the room made again by the first back")


async def real_audio_percent(daemon: Daemon, name: str) -> float:
    """Of the audio from `name` played since the last statistics: the share that was sent
    audio (its own packet, a RED copy or FEC), not made up."""
    stats = await daemon.call_stats()
    (peer,) = [p for p in stats["participants"] if p["name"] == name]
    shares = peer["audio_frames_percent"] or {}
    return float(sum(shares.get(source, 0.0) for source in ("primary", "red", "fec")))


async def room_server_restart(call: Call) -> Row:
    port = call.server.port
    await call.server.stop()
    call.server = RoomServer(RoomServerConfig(port=port, anonymous=True))
    await call.server.start()
    return Row("room server restart", "restart", await call.recovery(time.monotonic()), "")


async def network_cut(call: Call, seconds: float, rate: float, label: str) -> Row:
    """Every packet of the kiosk's connection to the watcher dropped (or `rate` of them)."""
    (pc,) = call.kiosk._backend.peer_connections().values()
    loss = Loss(rate, seed=1)
    await call.watcher.call_stats()  # its playout counts from here
    impair(pc, loss, outbound=True)
    await asyncio.sleep(seconds)
    video = await flowing(call.watcher, "kiosk")
    audio = await real_audio_percent(call.watcher, "kiosk")
    loss.rate = 0.0
    recovered = await call.recovery(time.monotonic())
    replaced = pc not in call.kiosk._backend.peer_connections().values()
    notes = f"at its end: video {'flowing' if video else 'stopped'}, "
    notes += f"{audio:.0f} % of the audio played was sent audio (not concealment); "
    notes += "connection replaced" if replaced else "same connection"
    return Row(label, f"{seconds:.0f} s", recovered, notes)


async def broker_restart(call: Call) -> Row:
    """Commands sent while the kiosk is not yet back on the broker are kept for it in its
    session and run once each when it is."""
    await asyncio.to_thread(call.broker.stop)
    await asyncio.to_thread(call.broker.start)
    restarted = time.monotonic()
    publisher = TestClient(call.broker.port)
    await publisher.subscribe("faults/replies")
    mutes = [True, False, True, False, True]
    for number, mute in enumerate(mutes):
        publisher.publish(
            "vcalld/kiosk/command/set-mute",
            json.dumps({"audio": mute}),
            ResponseTopic="faults/replies",
            CorrelationData=f"c{number}".encode(),
        )
    replies = [await publisher.next("faults/replies", RECOVERY_LIMIT_SECONDS) for _ in mutes]
    await asyncio.sleep(1.0)  # a duplicate would have come by now
    duplicates = publisher.pending("faults/replies")
    publisher.close()
    back = await seconds_until(_mqtt_connected(call.kiosk), restarted)
    correlations = sorted(reply.correlation_data or b"" for reply in replies)
    ran_once = (
        correlations == [f"c{n}".encode() for n in range(len(mutes))]
        and not duplicates
        and all(reply.json()["ok"] for reply in replies)
        and call.kiosk.state.current.audio_muted is mutes[-1]
    )
    notes = "time to be back on the broker (the call goes on); "
    notes += f"{len(mutes)} QoS 1 commands sent before it was back: "
    notes += "each run once" if ran_once else f"{correlations}, {duplicates} more"
    return Row("MQTT broker restart", "restart", back, notes)


def _mqtt_connected(daemon: Daemon) -> Callable[[], Awaitable[bool]]:
    async def connected() -> bool:
        await asyncio.sleep(FLOW_WINDOW_SECONDS)
        return daemon.state.current.mqtt == "connected"

    return connected


@dataclass
class KioskProcess:
    process: asyncio.subprocess.Process
    config: Path
    socket: Path


@asynccontextmanager
async def kiosk_process(call: Call, name: str) -> AsyncIterator[KioskProcess]:
    extra = "[video]\nwidth = 320\nheight = 240\nfps = 15\n"
    config, socket = write_daemon_config(call.folder, name, call.server.port, "faults", extra=extra)
    async with vcalld_process(config) as process:
        yield KioskProcess(process, config, socket)


async def process_faults(call: Call) -> list[Row]:
    rows = []
    async with kiosk_process(call, "proc") as kiosk:
        await eventually(lambda: flowing(call.watcher, "proc"), RECOVERY_LIMIT_SECONDS)
        kiosk.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        gone = await seconds_until(lambda: _left(call.watcher, "proc"), sent, window=0)
        await kiosk.process.wait()
        rows.append(Row("SIGTERM mid-call", "-", gone, "the watcher sees it leave"))
    async with kiosk_process(call, "proc") as kiosk:
        await eventually(lambda: flowing(call.watcher, "proc"), RECOVERY_LIMIT_SECONDS)
        kiosk.process.kill()
        await kiosk.process.wait()
    # systemd's RestartSec (2 s) not counted: from the new process's start.
    started = time.monotonic()
    async with kiosk_process(call, "proc") as kiosk:
        back = await seconds_until(lambda: flowing(call.watcher, "proc"), started)
        rows.append(Row("SIGKILL, then restarted", "-", back, "from the new process's start"))
        rows.append(await bad_reload(call, kiosk))
    return rows


async def bad_reload(call: Call, kiosk: KioskProcess) -> Row:
    """An invalid file on SIGHUP: refused and reported, the call never interrupted."""
    kiosk.config.write_text(kiosk.config.read_text() + "[video]\nwidht = 640\n")
    kiosk.process.send_signal(signal.SIGHUP)
    windows = [await flowing(call.watcher, "proc") for _ in range(6)]
    _, state = await control_request(kiosk.socket, "state")
    error = state.get("last_error") or ""
    notes = f"video in {sum(windows)} of {len(windows)} half-seconds after it; "
    notes += f"state: {error.split(' in ')[0]!r}"
    kept = all(windows) and error.startswith("reload refused")
    return Row("config reload with an invalid file", "-", 0.0 if kept else None, notes)


def _left(daemon: Daemon, name: str) -> bool:
    return all(p.name != name for p in daemon.state.current.participants)


async def run(loss_seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="vcalld-faults-") as scratch:
        folder = Path(scratch)
        broker = Mosquitto(folder)
        await asyncio.to_thread(broker.start)
        server = RoomServer(RoomServerConfig(port=0, anonymous=True))
        await server.start()
        call = Call(folder, server, broker)
        mqtt = {"enabled": True, "port": broker.port, "keepalive_seconds": 5}
        try:
            async with AsyncExitStack() as stack:
                call.kiosk = await stack.enter_async_context(
                    running(call.config("kiosk", mqtt=mqtt))
                )
                call.watcher = await stack.enter_async_context(running(call.config("watcher")))
                await eventually(call.both_ways, RECOVERY_LIMIT_SECONDS)
                rows = [
                    await room_server_restart(call),
                    await network_cut(call, 10.0, 1.0, "network cut"),
                    await network_cut(call, loss_seconds, 0.7, "70 % packet loss"),
                    await broker_restart(call),
                    *await process_faults(call),
                    await janus_restart(call),
                    *await device_faults(call),
                ]
        finally:
            await call.server.stop()
            await asyncio.to_thread(broker.stop)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss-seconds", type=float, default=60.0)
    args = parser.parse_args()
    rows = asyncio.run(run(args.loss_seconds))
    header = ["fault", "lasted", "back in the call after (s)", "notes"]
    print(markdown_table(header, [row.cells() for row in rows]))


if __name__ == "__main__":
    main()
