"""Daemons calling each other through a real room server, on loopback, with real codecs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.helpers import MIN_FPS, assert_receives, eventually, received, running, video_ok
from vcalld.commands import JoinCommand, LeaveCommand, SetMuteCommand
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.room.server import RoomServer
from vcalld.state import CallState

pytestmark = pytest.mark.slow
MEASURE_SECONDS = 3.0


async def test_two_daemons_exchange_pattern_and_tone(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    a = daemon_config(room_server, "dev-a", audio={"tone_frequency_hz": 440.0})
    b = daemon_config(
        room_server, "dev-b", audio={"tone_frequency_hz": 1000.0, "sample_rate": 16000}
    )
    async with running(a) as alice, running(b) as bob:
        await assert_receives(alice, "dev-b", 1000.0)
        await assert_receives(bob, "dev-a", 440.0)
        frames_before = received(alice, "dev-b")["video"]["stamped_frames"]
        await asyncio.sleep(MEASURE_SECONDS)
        gained = received(alice, "dev-b")["video"]["stamped_frames"] - frames_before
        assert gained >= MIN_FPS * MEASURE_SECONDS * 0.9


async def test_mute_sends_black_and_silence_then_unmute_restores(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with (
        running(daemon_config(room_server, "dev-a")) as alice,
        running(daemon_config(room_server, "dev-b")) as bob,
    ):
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


async def test_leave_and_join_commands(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with (
        running(daemon_config(room_server, "dev-a")) as alice,
        running(daemon_config(room_server, "dev-b", call={"auto_join": False})) as bob,
    ):
        assert bob.state.current.call is CallState.IDLE
        result = await bob.execute(JoinCommand(room="test"))
        assert result.ok
        again = await bob.execute(JoinCommand(room="test"))
        assert again.ok
        await eventually(lambda: video_ok(received(bob, "dev-a")), 15)
        await bob.execute(LeaveCommand())
        assert bob.state.current.call is CallState.IDLE
        await eventually(lambda: not alice.state.current.participants, 5)


async def test_rejoins_after_room_server_restart(
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    server = RoomServer(RoomServerConfig(port=0))
    await server.start()
    port = server.port
    async with (
        running(daemon_config(server, "dev-a")) as alice,
        running(daemon_config(server, "dev-b")) as bob,
    ):
        await eventually(lambda: video_ok(received(alice, "dev-b")), 15)
        await server.stop()
        await eventually(lambda: alice.state.current.call is CallState.RECONNECTING, 5)
        assert not alice.state.current.participants
        restarted = RoomServer(RoomServerConfig(port=port))
        await restarted.start()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await eventually(lambda: video_ok(received(alice, "dev-b")), 10)
            await eventually(lambda: video_ok(received(bob, "dev-a")), 10)
            assert loop.time() - started < 10
        finally:
            await restarted.stop()
