"""Home Assistant discovery, checked against the documented device-discovery schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tests.helpers import running
from tests.mqtt import Mosquitto, TestClient
from vcalld.config import VcalldConfig

TOPIC = "homeassistant/device/vcalld_kiosk/config"
DEVICE = "vcalld/kiosk"
# Device-discovery root keys Home Assistant accepts (any other key voids the payload), and
# what each platform requires, from Home Assistant's MQTT integration docs.
ROOT_KEYS = {"dev", "o", "cmps", "avty_t", "avty", "avty_mode", "avty_tpl", "pl_avail",
             "pl_not_avail", "stat_t", "cmd_t", "qos", "e"}  # fmt: skip
REQUIRED = {"button": {"cmd_t"}, "switch": {"cmd_t"}, "select": {"cmd_t", "ops"},
            "sensor": {"stat_t"}}  # fmt: skip
ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def check_schema(payload: dict[str, Any]) -> None:
    assert set(payload) <= ROOT_KEYS and {"dev", "o", "cmps"} <= set(payload), set(payload)
    assert payload["dev"]["ids"] and payload["o"]["name"]
    unique_ids = set()
    for key, component in payload["cmps"].items():
        assert ID.match(key), key
        platform = component["p"]
        assert platform in REQUIRED, platform
        missing = REQUIRED[platform] - set(component) - set(payload)
        assert not missing, (key, missing)
        assert ID.match(component["uniq_id"]) and component["uniq_id"] not in unique_ids
        unique_ids.add(component["uniq_id"])


async def test_device_is_discovered_and_its_switch_works(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    mqtt = {
        "enabled": True,
        "port": mosquitto.port,
        "homeassistant": {"enabled": True, "rooms": ["lobby", "hall"]},
    }
    fleet = TestClient(mosquitto.port)
    try:
        async with running(daemon_config(None, "kiosk", mqtt=mqtt)):
            await fleet.subscribe(f"{DEVICE}/availability")
            assert (await fleet.next(f"{DEVICE}/availability")).payload == b"online"
            await fleet.subscribe(TOPIC)
            announced = await fleet.next(TOPIC)
            assert announced.retain
            payload = announced.json()
            check_schema(payload)
            components = payload["cmps"]
            assert {c["p"] for c in components.values()} == {"button", "switch", "select", "sensor"}
            assert components["room"]["ops"] == ["lobby", "hall"]
            assert payload["avty_t"] == f"{DEVICE}/availability"

            # What Home Assistant sends when the microphone switch is turned off.
            microphone = components["microphone"]
            await fleet.subscribe(f"{DEVICE}/state")
            await fleet.next(f"{DEVICE}/state")
            fleet.publish(microphone["cmd_t"], microphone["pl_off"])
            state = (await fleet.next(f"{DEVICE}/state")).json()
            assert state["audio_muted"] is True and "audio_muted" in microphone["val_tpl"]
            # And the video switch: off is a voice-only call.
            video = components["video"]
            fleet.publish(video["cmd_t"], video["pl_off"])
            state = (await fleet.next(f"{DEVICE}/state")).json()
            assert state["video_enabled"] is False and "video_enabled" in video["val_tpl"]

            # Home Assistant's birth message makes the device announce itself again.
            fleet.publish("homeassistant/status", b"online")
            assert json.loads((await fleet.next(TOPIC)).payload) == payload
    finally:
        fleet.close()


async def test_disabled_discovery_removes_the_device(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    fleet = TestClient(mosquitto.port)
    try:
        fleet.publish(TOPIC, b'{"stale": true}', retain=True)
        async with running(
            daemon_config(None, "kiosk", mqtt={"enabled": True, "port": mosquitto.port})
        ):
            await fleet.subscribe(f"{DEVICE}/availability")
            assert (await fleet.next(f"{DEVICE}/availability")).payload == b"online"
            await fleet.subscribe(TOPIC)
            assert fleet.pending(TOPIC) == 0, "the retained announcement must be gone"
    finally:
        fleet.close()
