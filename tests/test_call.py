"""Daemons calling each other through a real room server, on loopback, with real codecs; the
behaviour every backend must share runs through Janus as well (`device`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from tests.conftest import Device
from tests.helpers import (
    MIN_FPS,
    assert_receives,
    eventually,
    received,
    running,
    tone_ok,
    video_ok,
)
from tests.lossy import ice_connection
from vcalld.commands import JoinCommand, LeaveCommand, SetMuteCommand, SetVideoCommand
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer
from vcalld.state import CallState

pytestmark = pytest.mark.slow
MEASURE_SECONDS = 3.0


async def test_two_daemons_exchange_pattern_and_tone(device: Device) -> None:
    a = device("dev-a", audio={"tone_frequency_hz": 440.0})
    b = device("dev-b", audio={"tone_frequency_hz": 1000.0, "sample_rate": 16000})
    async with running(a) as alice, running(b) as bob:
        await assert_receives(alice, "dev-b", 1000.0)
        await assert_receives(bob, "dev-a", 440.0)
        frames_before = received(alice, "dev-b")["video"]["stamped_frames"]
        await asyncio.sleep(MEASURE_SECONDS)
        gained = received(alice, "dev-b")["video"]["stamped_frames"] - frames_before
        assert gained >= MIN_FPS * MEASURE_SECONDS * 0.9


async def test_mute_sends_black_and_silence_then_unmute_restores(device: Device) -> None:
    async with running(device("dev-a")) as alice, running(device("dev-b")) as bob:
        await eventually(lambda: video_ok(received(bob, "dev-a")), 15)
        result = await alice.execute(SetMuteCommand(audio=True, video=True))
        assert result.ok and result.state is not None and result.state.audio_muted
        await asyncio.sleep(1.0)
        stamped = received(bob, "dev-a")["video"]["stamped_frames"]
        await asyncio.sleep(1.0)
        muted = received(bob, "dev-a")
        assert muted["video"]["stamped_frames"] == stamped
        assert muted["video"]["fps"] >= 25
        assert muted["audio"]["level_dbfs"] == -100.0
        await alice.execute(SetMuteCommand(audio=False, video=False))
        await eventually(
            lambda: received(bob, "dev-a")["video"]["stamped_frames"] > stamped + 20, 5
        )
        await eventually(lambda: received(bob, "dev-a")["audio"]["frequency_hz"], 5)


def video_tracks_from(daemon: Daemon, name: str) -> int:
    """Remote video tracks `daemon`'s connections have from `name`, whether frames come."""
    ids = [p.id for p in daemon.state.current.participants if p.name == name]
    connection = daemon._backend.peer_connections().get(ids[0]) if ids else None
    if connection is None:
        return 0
    receivers = connection.getReceivers()
    return sum(1 for r in receivers if r.track is not None and r.track.kind == "video")


def video_frames(daemon: Daemon, name: str) -> int:
    return int(received(daemon, name).get("video", {}).get("frames", 0))


async def test_voice_only_call_carries_no_video_until_set_video(device: Device) -> None:
    """Joined voice-only, alice sends no video track (bob's video still reaches her); video
    on renegotiates and her pattern arrives; off again, it stops and her camera with it."""
    a = device("dev-a", audio={"tone_frequency_hz": 440.0}, video={"send_at_start": False})
    async with running(a) as alice, running(device("dev-b")) as bob:
        assert not alice.state.current.video_enabled
        await eventually(lambda: tone_ok(received(bob, "dev-a"), 440.0), 20)
        await eventually(lambda: video_ok(received(alice, "dev-b")), 15)
        assert video_tracks_from(bob, "dev-a") == 0
        assert video_frames(bob, "dev-a") == 0

        result = await alice.execute(SetVideoCommand(enabled=True))
        assert result.ok and result.state is not None and result.state.video_enabled
        await eventually(lambda: video_ok(received(bob, "dev-a")), 15)
        assert video_tracks_from(bob, "dev-a") == 1
        assert tone_ok(received(bob, "dev-a"), 440.0)  # the audio went on through it

        await alice.execute(SetVideoCommand(enabled=False))
        await asyncio.sleep(1.0)
        frames = video_frames(bob, "dev-a")
        await asyncio.sleep(1.5)
        assert video_frames(bob, "dev-a") == frames
        assert alice.outgoing.video_source is not None
        assert tone_ok(received(bob, "dev-a"), 440.0)
        assert video_ok(received(alice, "dev-b"))  # what she receives is untouched

        await alice.execute(SetVideoCommand(enabled=True))
        await eventually(lambda: video_frames(bob, "dev-a") > frames + 30, 15)


async def test_leave_and_join_commands(device: Device) -> None:
    async with (
        running(device("dev-a")) as alice,
        running(device("dev-b", call={"auto_join": False})) as bob,
    ):
        room = bob.config.call.room
        assert bob.state.current.call is CallState.IDLE
        result = await bob.execute(JoinCommand(room=room))
        assert result.ok
        again = await bob.execute(JoinCommand(room=room))
        assert again.ok
        await eventually(lambda: video_ok(received(bob, "dev-a")), 15)
        await bob.execute(LeaveCommand())
        assert bob.state.current.call is CallState.IDLE
        # Gone for the others at once: the room server, or Janus, is told, no timeout waited.
        await eventually(lambda: not alice.state.current.participants, 2)


async def test_rejoins_after_room_server_restart(
    daemon_config: Callable[..., VcalldConfig], room_secret_file: Path
) -> None:
    server = RoomServer(RoomServerConfig(port=0, token_secret_file=room_secret_file))
    await server.start()
    port = server.port
    async with (
        running(daemon_config(server, "dev-a")) as alice,
        running(daemon_config(server, "dev-b")) as bob,
    ):
        await eventually(lambda: video_ok(received(alice, "dev-b")), 15)
        loop = asyncio.get_running_loop()
        stopping = loop.time()
        await server.stop()
        # It closes its clients' sockets (measured: 22 s while it waited on them instead).
        assert loop.time() - stopping < 2
        await eventually(lambda: alice.state.current.call is CallState.RECONNECTING, 5)
        assert not alice.state.current.participants
        restarted = RoomServer(RoomServerConfig(port=port, token_secret_file=room_secret_file))
        await restarted.start()
        try:
            started = loop.time()
            await eventually(lambda: video_ok(received(alice, "dev-b")), 10)
            await eventually(lambda: video_ok(received(bob, "dev-a")), 10)
            assert loop.time() - started < 10
        finally:
            await restarted.stop()


def connection_to(daemon: Daemon, name: str) -> RTCPeerConnection | None:
    ids = [p.id for p in daemon.state.current.participants if p.name == name]
    return daemon._backend.peer_connections().get(ids[0]) if ids else None


@pytest.mark.parametrize("failing", ["offerer", "answerer"])
async def test_a_failed_connection_is_replaced_within_the_call(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], failing: str
) -> None:
    """One side's ICE ends (what consent expiry does after a long network cut, or on a
    device too starved to answer checks): that side's connection fails while the other's
    still looks fine. The offerer starts the pair's next connection, asked by the other
    side if that is the one that failed, and media flow again both ways, with no rejoin."""
    a = daemon_config(room_server, "dev-a", audio={"tone_frequency_hz": 440.0})
    b = daemon_config(room_server, "dev-b", audio={"tone_frequency_hz": 1000.0})
    async with running(a) as alice, running(b) as bob:  # bob joins second, so bob offers
        await assert_receives(alice, "dev-b", 1000.0)
        await assert_receives(bob, "dev-a", 440.0)
        first = {alice: connection_to(alice, "dev-b"), bob: connection_to(bob, "dev-a")}
        side, other = (bob, "dev-a") if failing == "offerer" else (alice, "dev-b")
        failing_connection = connection_to(side, other)
        assert failing_connection is not None
        loop = asyncio.get_running_loop()
        failed = loop.time()
        await ice_connection(failing_connection).close()  # what consent expiry does

        def replaced_and_connected() -> bool:
            connections = {alice: connection_to(alice, "dev-b"), bob: connection_to(bob, "dev-a")}
            return all(
                pc is not None and pc is not first[d] and pc.connectionState == "connected"
                for d, pc in connections.items()
            )

        await eventually(replaced_and_connected, 10)
        recovered = loop.time() - failed
        stamped = {
            d: received(d, n)["video"]["stamped_frames"]
            for d, n in [(alice, "dev-b"), (bob, "dev-a")]
        }
        await asyncio.sleep(MEASURE_SECONDS)
        for daemon, name, tone in [(alice, "dev-b", 1000.0), (bob, "dev-a", 440.0)]:
            stats = received(daemon, name)
            assert (
                stats["video"]["stamped_frames"] - stamped[daemon]
                >= MIN_FPS * MEASURE_SECONDS * 0.9
            )
            assert tone_ok(stats, tone)
            assert daemon.state.current.call is CallState.IN_CALL
            assert [p.connection for p in daemon.state.current.participants] == ["connected"]
        print(f"{failing}'s connection failed: both sides connected again in {recovered:.1f} s")
