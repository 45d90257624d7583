"""The MQTT link when things break: a killed daemon, a restarted broker."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import (
    MIN_FPS,
    eventually,
    received,
    running,
    vcalld_process,
    video_ok,
    write_daemon_config,
)
from tests.mqtt import Mosquitto, TestClient
from vcalld.config import VcalldConfig
from vcalld.config.models import MqttConfig
from vcalld.control.mqtt.link import QUEUED_MESSAGES, MqttLink
from vcalld.room.server import RoomServer

REFUSED = "[Errno 111] Connection refused"

pytestmark = pytest.mark.slow
DEVICE = "vcalld/kiosk"
KEEPALIVE_SECONDS = 5


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_offline_is_published_when_the_daemon_dies_or_stops(
    mosquitto: Mosquitto, tmp_path: Path, stop: signal.Signals
) -> None:
    config, _ = write_daemon_config(
        tmp_path,
        "kiosk",
        9,
        auto_join=False,
        extra=f"[mqtt]\nenabled = true\nport = {mosquitto.port}\n"
        f"keepalive_seconds = {KEEPALIVE_SECONDS}\n",
    )
    fleet = TestClient(mosquitto.port)
    try:
        await fleet.subscribe(f"{DEVICE}/availability")
        async with vcalld_process(config) as process:
            assert (await fleet.next(f"{DEVICE}/availability")).payload == b"online"
            process.send_signal(stop)
            await process.wait()
            started = asyncio.get_running_loop().time()
            # SIGKILL leaves it to the broker's Last Will, after 1.5 keepalives of silence.
            offline = await fleet.next(f"{DEVICE}/availability", 1.5 * KEEPALIVE_SECONDS + 3)
            assert offline.payload == b"offline"
            waited = asyncio.get_running_loop().time() - started
            if stop is signal.SIGTERM:
                assert process.returncode == 0 and waited < 1.0, waited
    finally:
        fleet.close()


async def test_broker_restart_mid_call(
    mosquitto: Mosquitto,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    mqtt = {
        "enabled": True,
        "port": mosquitto.port,
        # Slow enough to reconnect that the test can publish while the device is away.
        "reconnect_min_seconds": 3.0,
        "reconnect_max_seconds": 3.0,
    }
    kiosk_config = daemon_config(room_server, "kiosk", mqtt=mqtt)
    async with (
        running(daemon_config(room_server, "peer")) as peer,
        running(kiosk_config) as kiosk,
    ):
        await eventually(lambda: video_ok(received(peer, "kiosk")), 15)
        assert kiosk.state.current.mqtt == "connected"
        watcher = TestClient(mosquitto.port)
        await watcher.subscribe(f"{DEVICE}/availability")
        assert (await watcher.next(f"{DEVICE}/availability")).payload == b"online"
        # Clear the retained "online", so the one seen after the restart must be a fresh one.
        watcher.publish(f"{DEVICE}/availability", b"", retain=True)
        await asyncio.sleep(0.3)
        watcher.close()

        await asyncio.to_thread(mosquitto.stop)
        before = received(peer, "kiosk")["video"]["stamped_frames"]
        await asyncio.sleep(2.0)
        gained = received(peer, "kiosk")["video"]["stamped_frames"] - before
        assert gained >= 2.0 * MIN_FPS, f"the call must not depend on the broker: {gained}"
        # The device itself says why its fleet cannot see it (vcallctl state, the journal).
        await eventually(lambda: kiosk.state.current.mqtt == f"unreachable: {REFUSED}", 5)
        await asyncio.to_thread(mosquitto.start)
        fleet = TestClient(mosquitto.port)
        try:
            await fleet.subscribe("test/replies/outage")
            fleet.publish(
                f"{DEVICE}/command/set-mute",
                b'{"audio": true, "id": "outage", "reply_to": "test/replies/outage"}',
            )
            await fleet.subscribe(f"{DEVICE}/availability")
            await fleet.subscribe(f"{DEVICE}/state")
            reply = (await fleet.next("test/replies/outage", 15)).json()
            assert reply["ok"] and reply["state"]["audio_muted"] is True, reply
            assert "duplicate" not in reply
            # mosquitto fires the device's Last Will when it shuts down; "online" must follow.
            while (await fleet.next(f"{DEVICE}/availability")).payload != b"online":
                pass
            # State is republished on reconnect, then again after the queued command ran.
            while not (state := (await fleet.next(f"{DEVICE}/state")).json())["audio_muted"]:
                pass
            assert state["call"] == "in-call"
            await asyncio.sleep(2.0)
            assert fleet.pending("test/replies/outage") == 0, "the command ran twice"
            assert video_ok(received(peer, "kiosk"))
            assert kiosk.state.current.mqtt == "connected"
        finally:
            fleet.close()


async def test_messages_published_while_connecting_follow_the_connect(
    mosquitto: Mosquitto,
) -> None:
    """State changes during the threaded connect must neither break it nor get lost."""
    statuses: list[str] = []
    link = MqttLink(
        MqttConfig(enabled=True, port=mosquitto.port),
        client_id="racer",
        will=("racer/availability", "offline"),
        on_connected=lambda: None,
        on_message=lambda message: None,
        on_status=statuses.append,
    )
    watcher = TestClient(mosquitto.port)
    await watcher.subscribe("racer/state")
    try:
        async with asyncio.TaskGroup() as tasks:
            running_link = tasks.create_task(link.run())
            published = 0
            async with asyncio.timeout(10):
                while not link.connected:
                    link.publish("racer/state", str(published))
                    published += 1
                    await asyncio.sleep(0)
            running_link.cancel()
        assert statuses[0] == "connected", statuses
        assert published > 0
        newest = min(published, QUEUED_MESSAGES)
        arrived = [int((await watcher.next("racer/state")).payload) for _ in range(newest)]
        assert arrived == list(range(published - newest, published))
    finally:
        watcher.close()
