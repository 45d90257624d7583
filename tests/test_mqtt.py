"""The daemon's MQTT API against Debian's mosquitto: commands, replies, state, events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.certificates import make_pki
from tests.helpers import eventually, running
from tests.mqtt import Mosquitto, Mqtt311OnlyFront, TestClient
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer

DEVICE = "vcalld/kiosk"


def mqtt_section(broker: Mosquitto, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "port": broker.port, "reconnect_min_seconds": 0.2, **overrides}


@asynccontextmanager
async def controller(broker: Mosquitto, protocol: str = "5") -> AsyncIterator[TestClient]:
    client = TestClient(broker.port, protocol)
    try:
        yield client
    finally:
        client.close()


@asynccontextmanager
async def kiosk(
    daemon_config: Callable[..., VcalldConfig], broker: Mosquitto, **mqtt: Any
) -> AsyncIterator[Daemon]:
    """A device that is in no call, controlled over MQTT."""
    config = daemon_config(None, "kiosk", mqtt=mqtt_section(broker, **mqtt))
    async with running(config) as daemon:
        yield daemon


async def next_state(
    client: TestClient, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        state: dict[str, Any] = (await client.next(f"{DEVICE}/state")).json()
        if predicate(state):
            return state


async def next_event(client: TestClient, kind: str) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = (await client.next(f"{DEVICE}/event")).json()
        if event["event"] == kind:
            return event


async def test_availability_state_and_a_command_round_trip(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto) as fleet:
        await fleet.subscribe(f"{DEVICE}/availability")
        assert (await fleet.next(f"{DEVICE}/availability")).payload == b"online"
        async with controller(mosquitto) as late:  # a subscriber that comes later
            await late.subscribe(f"{DEVICE}/availability")
            await late.subscribe(f"{DEVICE}/state")
            availability = await late.next(f"{DEVICE}/availability")
            assert (availability.payload, availability.retain) == (b"online", True)
            state = await late.next(f"{DEVICE}/state")
            assert state.retain and state.json()["call"] == "idle"
        await fleet.subscribe(f"{DEVICE}/state")

        reply = await fleet.request(DEVICE, "set-mute", {"audio": True})
        assert reply["ok"] is True and reply["state"]["audio_muted"] is True, reply
        assert (await next_state(fleet, lambda s: s["audio_muted"]))["video_muted"] is False
        assert (await fleet.request(DEVICE, "get-state"))["state"]["audio_muted"] is True


async def test_join_and_leave_with_events(
    mosquitto: Mosquitto,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    peer_config = daemon_config(room_server, "peer")
    kiosk_config = daemon_config(
        room_server, "kiosk", call={"auto_join": False}, mqtt=mqtt_section(mosquitto)
    )
    async with running(peer_config), running(kiosk_config), controller(mosquitto) as fleet:
        await fleet.subscribe(f"{DEVICE}/event")
        reply = await fleet.request(DEVICE, "join", {"room": "test"})
        assert reply["ok"], reply
        assert (await next_event(fleet, "call-started"))["room"] == "test"
        assert (await next_event(fleet, "participant-joined"))["name"] == "peer"
        reply = await fleet.request(DEVICE, "leave")
        assert reply["ok"] and reply["state"]["call"] == "idle", reply
        assert (await next_event(fleet, "participant-left"))["name"] == "peer"
        assert (await next_event(fleet, "call-ended"))["room"] == "test"


BAD_COMMANDS = [
    (
        "set-mute",
        b'{"audio": "maybe"}',
        "audio: Input should be a valid boolean, unable to interpret input",
    ),
    ("set-mute", b"{}", "(arguments): give at least one of audio, video"),
    ("set-mute", b'{"audio": true, "volume": 3}', "volume: unknown field"),
    (
        "join",
        b'{"room": "../etc"}',
        "room: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
    ),
    (
        "frobnicate",
        b"",
        "unknown command 'frobnicate' (known: join, leave, set-mute, set-video, set-volume, "
        "set-camera-control, start-audio-mix, set-audio-mix, stop-audio-mix, set-processors, "
        "start-screen-share, stop-screen-share, start-recording, stop-recording, get-state)",
    ),
    (
        "set-camera-control",
        b'{"control": "Brightness", "value": 3}',
        "control: a control's name is lower case, as `vcalld devices` lists it",
    ),
    (
        "set-camera-control",
        b'{"control": "brightness", "value": 1.5}',
        "value: a control takes an integer, true or false, or a menu entry's label",
    ),
    ("set-volume", b'{"volume": 5}', "volume: Input should be less than or equal to 4"),
    ("set-volume", b'{"participant": "p1"}', "volume: Field required"),
    ("set-mute", b"[true]", "payload: must be a JSON object of arguments"),
    (
        "set-mute",
        b'{"audio": true, "id": [1]}',
        "id: must be a string or an integer of at most 128 characters",
    ),
    (
        "set-mute",
        b'{"audio": true, "expires_at": "soon"}',
        "expires_at: must be a Unix time in seconds",
    ),
]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_bad_commands_get_errors_naming_the_field(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig], protocol: str
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto, protocol) as fleet:
        await fleet.subscribe(f"{DEVICE}/event")
        for name, payload, message in BAD_COMMANDS:
            if protocol == "5":
                reply = await fleet.request(DEVICE, name, payload)
            elif payload.startswith(b"{"):
                # MQTT 3.1.1 has no response topic: the envelope rides in the payload.
                enveloped = {**json.loads(payload), "reply_to": "test/replies/x"}
                await fleet.subscribe("test/replies/x")
                fleet.publish(f"{DEVICE}/command/{name}", json.dumps(enveloped))
                reply = (await fleet.next("test/replies/x")).json()
            else:
                continue  # a payload that is not an object cannot carry reply_to
            assert reply["ok"] is False, (name, payload, reply)
            assert reply["error"] == {"code": "invalid-command", "message": message}
            event = await next_event(fleet, "command-failed")
            assert event["command"] == name and event["error"]["message"] == message
        assert (await fleet.request(DEVICE, "get-state"))["state"]["audio_muted"] is False


async def test_not_json_is_answered_on_mqtt5(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto) as fleet:
        reply = await fleet.request(DEVICE, "set-mute", b"\xff not json")
        assert reply["error"]["code"] == "invalid-command"
        assert reply["error"]["message"].startswith("payload: not JSON: ")


async def test_mqtt311_reply_echoes_id(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto, "3.1.1") as fleet:
        reply = await fleet.request(DEVICE, "set-mute", {"video": True})
        assert reply["ok"] and isinstance(reply["id"], int), reply
        assert reply["state"]["video_muted"] is True


async def test_daemon_speaking_mqtt311_still_answers(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with (
        kiosk(daemon_config, mosquitto, protocol="3.1.1"),
        controller(mosquitto, "3.1.1") as fleet,
    ):
        reply = await fleet.request(DEVICE, "set-mute", {"audio": True})
        assert reply["ok"] and reply["state"]["audio_muted"] is True


async def test_group_topic_reaches_the_device(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto) as fleet:
        reply = await fleet.request("vcalld/all", "set-mute", {"audio": True})
        assert reply["ok"] and reply["state"]["device_id"] == "kiosk"


async def test_retained_command_is_ignored_with_an_event(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with controller(mosquitto) as fleet:
        fleet.publish(f"{DEVICE}/command/set-mute", b'{"audio": true}', retain=True)
        await fleet.subscribe(f"{DEVICE}/event")
        async with kiosk(daemon_config, mosquitto):
            event = await next_event(fleet, "command-ignored")
            assert event == {
                "event": "command-ignored",
                "command": "set-mute",
                "reason": "retained",
            }
            assert (await fleet.request(DEVICE, "get-state"))["state"]["audio_muted"] is False
        fleet.publish(f"{DEVICE}/command/set-mute", b"", retain=True)  # clear it


async def test_expired_command_is_refused(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto) as fleet:
        stale = time.time() - 5
        reply = await fleet.request(DEVICE, "set-mute", {"audio": True, "expires_at": stale})
        assert reply["error"]["code"] == "expired", reply
        assert (await fleet.request(DEVICE, "get-state"))["state"]["audio_muted"] is False


async def test_repeated_id_is_answered_but_not_executed_again(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto, "3.1.1") as fleet:
        await fleet.subscribe("test/replies/dup")
        mute = b'{"audio": true, "id": "once", "reply_to": "test/replies/dup"}'
        fleet.publish(f"{DEVICE}/command/set-mute", mute)
        first = (await fleet.next("test/replies/dup")).json()
        assert first["ok"] and first["state"]["audio_muted"] is True
        assert (await fleet.request(DEVICE, "set-mute", {"audio": False}))["ok"]
        fleet.publish(f"{DEVICE}/command/set-mute", mute)
        again = (await fleet.next("test/replies/dup")).json()
        assert again == {**first, "duplicate": True}
        assert (await fleet.request(DEVICE, "get-state"))["state"]["audio_muted"] is False


async def test_reply_topic_in_the_device_tree_is_refused(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with kiosk(daemon_config, mosquitto), controller(mosquitto, "3.1.1") as fleet:
        await fleet.subscribe(f"{DEVICE}/event")
        await fleet.subscribe(f"{DEVICE}/state")
        await fleet.next(f"{DEVICE}/state")  # the retained one
        fleet.publish(f"{DEVICE}/command/get-state", b'{"reply_to": "vcalld/kiosk/state", "id": 1}')
        event = await next_event(fleet, "reply-refused")
        assert event["error"] == "reply_to: must not be under vcalld/kiosk/ or homeassistant/"
        assert fleet.pending(f"{DEVICE}/state") == 0


async def test_call_statistics_are_published_while_in_a_call(
    mosquitto: Mosquitto,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    kiosk_config = daemon_config(
        room_server, "kiosk", mqtt=mqtt_section(mosquitto, stats_interval_seconds=1.0)
    )
    async with (
        running(daemon_config(room_server, "peer")),
        running(kiosk_config),
        controller(mosquitto) as fleet,
    ):
        await fleet.subscribe(f"{DEVICE}/stats")
        async with asyncio.timeout(20):
            while True:
                stats = (await fleet.next(f"{DEVICE}/stats")).json()
                peers = stats["participants"]
                # The first sample of a peer has no rates yet: they need two samples.
                if (
                    peers
                    and peers[0]["rtt_ms"] is not None
                    and peers[0]["receive_kbps"] is not None
                    and (peers[0]["fps"] or 0) >= 25
                ):
                    break
        assert stats["call"] == "in-call" and stats["room"] == "test"
        (peer,) = peers
        assert peer["name"] == "peer" and (peer["width"], peer["height"]) == (640, 480), peer
        # 640x480 VP8 from aiortc runs at 0.25-1.5 Mbit/s; Opus adds about 100 kbit/s.
        assert 50 < peer["receive_kbps"] < 3000 and 50 < peer["send_kbps"] < 3000, peer
        assert 0 <= peer["loss_percent"] < 5, peer  # loopback, but 2 busy cores drop a few
        assert 0 <= peer["rtt_ms"] < 500, peer
        assert set(peer["jitter_ms"]) == {"audio", "video"}, peer


async def test_tls_with_client_certificate_and_password(
    tmp_path: Path, daemon_config: Callable[..., VcalldConfig], caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path)
    broker_folder = tmp_path / "broker"
    broker_folder.mkdir()
    broker = Mosquitto(
        broker_folder,
        tls=(pki.ca, pki.server_certificate, pki.server_key),
        passwords={"kiosk": "s3cret", "fleet": "fleet-pass"},
    )
    await asyncio.to_thread(broker.start)
    (tmp_path / "password").write_text("s3cret\n")
    tls = {
        "enabled": True,
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_certificate),
        "key_file": str(pki.client_key),
    }
    secure = mqtt_section(
        broker, tls=tls, username="kiosk", password_file=str(tmp_path / "password")
    )
    fleet = TestClient(
        broker.port,
        tls=(pki.ca, pki.client_certificate, pki.client_key),
        credentials=("fleet", "fleet-pass"),
    )
    try:
        async with running(daemon_config(None, "kiosk", mqtt=secure)):
            reply = await fleet.request(DEVICE, "set-mute", {"video": True})
            assert reply["ok"] and reply["state"]["video_muted"] is True, reply
        (tmp_path / "password").write_text("wrong\n")
        async with running(daemon_config(None, "kiosk", mqtt=secure)) as refused:
            await eventually(
                lambda: "broker refused the connection: Not authorized" in caplog.text, 10
            )
            assert refused.state.current.mqtt == "refused: Not authorized"
    finally:
        fleet.close()
        await asyncio.to_thread(broker.stop)


EXAMPLE_ACL = Path(__file__).parent.parent / "config" / "mosquitto" / "vcalld.acl"


@pytest.mark.parametrize("login", ["password", "client certificate"])
async def test_the_example_acl_confines_each_device_to_its_own_topics(
    tmp_path: Path, daemon_config: Callable[..., VcalldConfig], login: str
) -> None:
    """Through the shipped ACL: the fleet commands the kiosk and reads its state; another
    device can do neither, though it is on the same broker. Each logs in with a password, or
    with a client certificate whose common name is its username."""
    if login == "password":
        passwords = {"kiosk": "k-pass", "other": "o-pass", "fleet": "f-pass"}
        broker = Mosquitto(tmp_path, passwords=passwords, acl_file=EXAMPLE_ACL)
        (tmp_path / "password").write_text("k-pass\n")
        mqtt = mqtt_section(broker, username="kiosk", password_file=str(tmp_path / "password"))
        fleet_login: dict[str, Any] = {"credentials": ("fleet", "f-pass")}
        other_login: dict[str, Any] = {"credentials": ("other", "o-pass")}
    else:
        pki = make_pki(tmp_path, ["kiosk", "other", "fleet"])
        server = (pki.ca, pki.server_certificate, pki.server_key)
        broker = Mosquitto(tmp_path, tls=server, acl_file=EXAMPLE_ACL, identity_as_username=True)
        certificate, key = pki.clients["kiosk"]
        tls = {"enabled": True, "ca_file": str(pki.ca), "cert_file": str(certificate)}
        mqtt = mqtt_section(broker, tls=tls | {"key_file": str(key)})
        fleet_login = {"tls": (pki.ca, *pki.clients["fleet"])}
        other_login = {"tls": (pki.ca, *pki.clients["other"])}
    await asyncio.to_thread(broker.start)
    fleet = TestClient(broker.port, **fleet_login)
    other = TestClient(broker.port, **other_login)
    replies = "vcalld/_replies/fleet"
    try:
        async with running(daemon_config(None, "kiosk", mqtt=mqtt)) as kiosk:
            await eventually(lambda: kiosk.state.current.mqtt == "connected", 10)
            await other.subscribe(f"{DEVICE}/state")
            await other.subscribe(f"{DEVICE}/event")
            other.publish(f"{DEVICE}/command/set-mute", '{"audio": true}')
            await fleet.subscribe(f"{DEVICE}/state")
            await fleet.subscribe(replies)
            assert (await fleet.next(f"{DEVICE}/state")).json()["device_id"] == "kiosk"
            fleet.publish(
                f"{DEVICE}/command/set-mute",
                '{"video": true}',
                ResponseTopic=replies,
                CorrelationData=b"1",
            )
            reply = (await fleet.next(replies)).json()
            assert reply["ok"] and reply["state"]["video_muted"] is True, reply
            await asyncio.sleep(1.0)  # the other device's command would have run by now
            assert kiosk.state.current.audio_muted is False
            assert other.pending(f"{DEVICE}/state") == other.pending(f"{DEVICE}/event") == 0
    finally:
        fleet.close()
        other.close()
        await asyncio.to_thread(broker.stop)


async def test_falls_back_to_mqtt311_when_the_broker_refuses_mqtt5(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig]
) -> None:
    front = Mqtt311OnlyFront(mosquitto.port)
    await front.start()
    config = daemon_config(None, "kiosk", mqtt={"enabled": True, "port": front.port})
    try:
        async with running(config), controller(mosquitto, "3.1.1") as fleet:
            reply = await fleet.request(DEVICE, "set-mute", {"audio": True})
            assert reply["ok"] and reply["state"]["audio_muted"] is True, reply
            assert front.refused == 1
            # mosquitto logs MQTT 3.1.1 as protocol p2 (and MQTT 5 as p5).
            assert "as vcalld-kiosk (p2, c0" in mosquitto.log()
    finally:
        await front.stop()
