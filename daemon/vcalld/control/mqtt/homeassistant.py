"""Home Assistant MQTT discovery: the kiosk appears as one device with its controls.

One device-based discovery payload (`<prefix>/device/<object id>/config`) describes every
entity; they all read the retained `state` (or `stats`) and send ordinary commands, so Home
Assistant needs nothing vcalld-specific. Keys use Home Assistant's documented abbreviations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vcalld import __version__
from vcalld.control.mqtt.topics import Topics

BIRTH_TOPIC = "homeassistant/status"


def object_id(device_id: str) -> str:
    """Discovery ids allow only [a-zA-Z0-9_-]."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", f"vcalld_{device_id}")


def discovery_topic(topics: Topics) -> str:
    return f"{topics.discovery_prefix}/device/{object_id(topics.device_id)}/config"


def discovery_payload(topics: Topics, device_name: str, rooms: list[str]) -> dict[str, Any]:
    base = object_id(topics.device_id)
    components: dict[str, dict[str, Any]] = {
        "join": _button("Join call", topics.command("join")),
        "leave": _button("Leave call", topics.command("leave")),
        "microphone": _switch(
            "Microphone", topics, ("set-mute", "audio", False), "not value_json.audio_muted"
        ),
        "camera": _switch(
            "Camera", topics, ("set-mute", "video", False), "not value_json.video_muted"
        ),
        # Off is a voice-only call (no video track, the camera closed); Camera off sends black.
        "video": _switch(
            "Video", topics, ("set-video", "enabled", True), "value_json.video_enabled"
        ),
        "call_state": {
            "p": "sensor",
            "name": "Call state",
            "stat_t": topics.state,
            "val_tpl": "{{ value_json.call }}",
        },
        "participants": {
            "p": "sensor",
            "name": "Participants",
            "stat_t": topics.state,
            "val_tpl": "{{ value_json.participants | count }}",
            "stat_cla": "measurement",
        },
        "receive_bitrate": {
            "p": "sensor",
            "name": "Receive bitrate",
            "stat_t": topics.stats,
            "val_tpl": "{{ value_json.participants | map(attribute='receive_kbps')"
            " | reject('none') | sum | round(1) }}",
            "unit_of_meas": "kbit/s",
            "dev_cla": "data_rate",
            "stat_cla": "measurement",
        },
    }
    if rooms:
        components["room"] = {
            "p": "select",
            "name": "Room",
            "cmd_t": topics.command("join"),
            "cmd_tpl": '{"room": "{{ value }}"}',
            "ops": rooms,
            "stat_t": topics.state,
            "val_tpl": "{{ value_json.room }}",
        }
    for key, component in components.items():
        component["uniq_id"] = f"{base}_{key}"
        component["qos"] = 1  # repeated per component: older HA ignores a root qos
    return {
        "dev": {
            "ids": [base],
            "name": device_name,
            "mf": "vcalld",
            "mdl": "vcalld kiosk",
            "sw": __version__,
        },
        "o": {"name": "vcalld", "sw": __version__},
        "avty_t": topics.availability,
        "cmps": components,
    }


def _button(name: str, command_topic: str) -> dict[str, Any]:
    return {"p": "button", "name": name, "cmd_t": command_topic, "pl_prs": "{}"}


def _switch(name: str, topics: Topics, on: tuple[str, str, bool], on_when: str) -> dict[str, Any]:
    """A switch that sends `command` with `argument` = `value` to turn on (the opposite to
    turn off), and is on when the state says `on_when`: on means sending."""
    command, argument, value = on
    return {
        "p": "switch",
        "name": name,
        "cmd_t": topics.command(command),
        "pl_on": json.dumps({argument: value}),
        "pl_off": json.dumps({argument: not value}),
        "stat_t": topics.state,
        "val_tpl": f"{{{{ 'ON' if {on_when} else 'OFF' }}}}",
        "stat_on": "ON",
        "stat_off": "OFF",
    }
