"""`vcallctl` as a real process: a fleet's commands over MQTT, and `watch` on both transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import running
from tests.mqtt import Mosquitto, Mqtt311OnlyFront, free_port
from tests.vcallctl import vcallctl, watching
from vcalld.config import EX_CONFIG, VcalldConfig
from vcalld.room.server import RoomServer
from vcalld.vcallctl import EX_TEMPFAIL, EX_UNAVAILABLE

pytestmark = pytest.mark.slow


def mqtt_section(broker: Mosquitto, stats_interval: float = 10.0) -> dict[str, object]:
    return {"enabled": True, "port": broker.port, "stats_interval_seconds": stats_interval}


def client_protocols(broker: Mosquitto) -> list[str]:
    """The protocol level mosquitto logged for each vcallctl connection: p5 (MQTT 5) or
    p2 (MQTT 3.1.1)."""
    lines = [line for line in broker.log().splitlines() if " as vcallctl-" in line]
    return [line.split(" (", 1)[1][:2] for line in lines]


async def test_commands_and_state_over_mqtt(
    mosquitto: Mosquitto, room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    peer = daemon_config(room_server, "peer")
    kiosk = daemon_config(
        room_server, "kiosk", call={"auto_join": False}, mqtt=mqtt_section(mosquitto)
    )
    remote = ("--broker", f"127.0.0.1:{mosquitto.port}", "--device", "kiosk")
    async with running(peer), running(kiosk) as device:
        status, state, _ = await vcallctl(*remote, "state")
        assert status == 0 and state["device_id"] == "kiosk" and state["call"] == "idle", state

        status, reply, _ = await vcallctl(*remote, "join", "--room", "test")
        assert status == 0 and reply["ok"] and reply["state"]["room"] == "test", reply
        assert device.state.current.room == "test"

        status, reply, _ = await vcallctl(*remote, "set-mute", "--audio", "maybe")
        assert status == 1 and reply["error"]["code"] == "invalid-command", reply
        assert reply["error"]["message"].startswith("audio:"), reply
        assert device.state.current.audio_muted is False

        status, reply, _ = await vcallctl(*remote, "leave")
        assert status == 0 and reply["state"]["call"] == "idle", reply
    assert client_protocols(mosquitto) == ["p5"] * 4


async def test_mqtt311_from_the_config_file(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    fleet_config = tmp_path / "fleet.toml"
    fleet_config.write_text(f'[mqtt]\nport = {mosquitto.port}\nprotocol = "3.1.1"\n')
    kiosk = daemon_config(None, "kiosk", mqtt=mqtt_section(mosquitto))
    async with running(kiosk) as device:
        status, reply, _ = await vcallctl(
            "--config", str(fleet_config), "--device", "kiosk", "set-mute", "--video", "true"
        )
        assert status == 0 and reply["ok"] and "id" not in reply, reply
        assert device.state.current.video_muted is True
    assert client_protocols(mosquitto) == ["p2"]


async def test_falls_back_to_mqtt311_when_the_broker_refuses_mqtt5(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    front = Mqtt311OnlyFront(mosquitto.port)
    await front.start()
    try:
        async with running(daemon_config(None, "kiosk", mqtt=mqtt_section(mosquitto))):
            status, reply, _ = await vcallctl(
                "--broker", f"127.0.0.1:{front.port}", "--device", "kiosk", "get-state"
            )
            assert status == 0 and reply["state"]["device_id"] == "kiosk", reply
        assert front.refused == 1
    finally:
        await front.stop()


async def test_failures_are_explained_with_distinct_exit_codes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    broker = ("--broker", f"127.0.0.1:{mosquitto.port}")
    status, _, error = await vcallctl(*broker, "--timeout", "1", "--device", "gone", "leave")
    assert status == EX_TEMPFAIL and "no reply from gone within 1 s" in error, error

    status, _, error = await vcallctl(*broker, "--device", "gone", "state")
    assert status == EX_UNAVAILABLE and "no state retained on vcalld/gone/state" in error, error

    closed = f"127.0.0.1:{free_port()}"
    status, _, error = await vcallctl("--broker", closed, "--device", "kiosk", "leave")
    assert status == EX_UNAVAILABLE and f"cannot reach MQTT broker {closed}" in error, error

    status, _, error = await vcallctl("--broker", "127.0.0.1:x", "--device", "kiosk", "leave")
    assert status == 2 and "--broker: '127.0.0.1:x' is not HOST[:PORT]" in error, error

    status, _, error = await vcallctl(*broker, "--device", "kiosk", "watch", "--count", "0")
    assert status == 2 and "--count must be a whole number above 0" in error, error

    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 99999\n")
    status, _, error = await vcallctl("--config", str(bad), "--device", "kiosk", "leave")
    assert status == EX_CONFIG and "mqtt.port" in error and ":2:" in error, error


def is_event(kind: str) -> Callable[[dict[str, object]], bool]:
    return lambda line: isinstance(event := line.get("event"), dict) and event["event"] == kind


def has_stats_of(name: str) -> Callable[[dict[str, object]], bool]:
    def check(line: dict[str, object]) -> bool:
        stats = line.get("stats")
        return isinstance(stats, dict) and any(
            p["name"] == name and p["fps"] for p in stats["participants"]
        )

    return check


async def test_watch_over_mqtt_shows_availability_events_and_stats(
    mosquitto: Mosquitto, room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    kiosk = daemon_config(room_server, "kiosk", mqtt=mqtt_section(mosquitto, stats_interval=0.5))
    broker = ("--broker", f"127.0.0.1:{mosquitto.port}")
    async with watching(*broker, "--device", "kiosk", "watch") as watch:
        async with running(kiosk):
            await watch.until(lambda line: line.get("availability") == "online")
            async with running(daemon_config(room_server, "peer")):
                joined = await watch.until(is_event("participant-joined"))
                assert joined["event"]["name"] == "peer"
                stats = await watch.until(has_stats_of("peer"))
                assert {"receive_kbps", "loss_percent", "jitter_ms", "rtt_ms", "width"} <= set(
                    stats["stats"]["participants"][0]
                ), stats
            await watch.until(is_event("participant-left"))
        await watch.until(lambda line: line.get("availability") == "offline")
        assert all(isinstance(line["time"], float) for line in watch.lines)


async def test_local_watch_streams_until_the_daemon_stops(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    kiosk = daemon_config(room_server, "kiosk")
    async with running(kiosk) as device:
        socket = str(kiosk.control.socket)
        async with watching("--socket", socket, "watch", "--stats-interval", "0.5") as watch:
            # The stream starts with the current state, so it is open before the peer arrives.
            first = await watch.until(lambda line: True)
            assert first["state"]["call"] == "in-call" and not first["state"]["participants"]
            async with running(daemon_config(room_server, "peer")):
                await watch.until(is_event("participant-joined"))
                await watch.until(has_stats_of("peer"))
            await watch.until(is_event("participant-left"))
            device.stop()
            assert await asyncio.wait_for(watch.process.wait(), 10) == EX_UNAVAILABLE
