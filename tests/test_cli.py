"""`vcalld run` as a real process, controlled with `vcallctl` over its Unix socket."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import (
    BIN,
    eventually,
    received,
    running,
    vcalld_process,
    video_ok,
    write_daemon_config,
)
from tests.vcallctl import vcallctl
from vcalld.config import VcalldConfig
from vcalld.room.server import RoomServer
from vcalld.vcallctl import EX_UNAVAILABLE

pytestmark = pytest.mark.slow


async def local(socket: Path, *words: str) -> tuple[int, Any]:
    status, reply, error = await vcallctl("--socket", str(socket), *words)
    return status, reply if reply is not None else error


async def test_vcallctl_controls_a_running_daemon(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    tmp_path: Path,
) -> None:
    config_file, socket = write_daemon_config(
        tmp_path, "kiosk", room_server.port, room_secret_file=room_secret_file
    )
    async with (
        vcalld_process(config_file) as process,
        running(daemon_config(room_server, "viewer")) as viewer,
    ):
        await eventually(lambda: video_ok(received(viewer, "kiosk")), 20)
        status, state = await local(socket, "state")
        assert status == 0 and state["call"] == "in-call" and state["room"] == "test", state
        assert [p["name"] for p in state["participants"]] == ["viewer"]

        status, reply = await local(socket, "set-mute", "--video", "true")
        assert status == 0 and reply["state"]["video_muted"] is True, reply
        await asyncio.sleep(0.5)
        frozen = received(viewer, "kiosk")["video"]["stamped_frames"]
        await asyncio.sleep(1.0)
        assert received(viewer, "kiosk")["video"]["stamped_frames"] == frozen

        status, reply = await local(socket, "set-mute", "--audio", "maybe")
        assert status == 1 and reply["error"]["code"] == "invalid-command", reply
        assert reply["error"]["message"].startswith("audio:"), reply
        status, reply = await local(socket, "frobnicate")
        assert status == 1 and "unknown command 'frobnicate'" in reply["error"]["message"]
        status, reply = await local(socket, "join", "--room", "../etc")
        assert status == 1 and reply["error"]["message"].startswith("room:"), reply

        status, reply = await local(socket, "leave")
        assert status == 0 and reply["state"]["call"] == "idle", reply
        await eventually(lambda: not viewer.state.current.participants, 5)
        status, reply = await local(socket, "join")
        assert status == 0
        # Mute outlives a rejoin: the kiosk comes back sending black frames, not its camera.
        await eventually(lambda: received(viewer, "kiosk").get("video", {}).get("fps", 0) > 20, 20)
        assert received(viewer, "kiosk")["video"]["stamped_frames"] == 0
        status, reply = await local(socket, "set-mute", "--video", "false")
        assert status == 0 and reply["state"]["video_muted"] is False, reply
        await eventually(lambda: video_ok(received(viewer, "kiosk")), 10)

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert not socket.exists()
        await eventually(lambda: not viewer.state.current.participants, 5)


async def test_vcallctl_without_daemon_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sock"
    status, message = await local(missing, "state")
    assert status == EX_UNAVAILABLE
    assert f"cannot reach vcalld at {missing}: No such file or directory" in message


async def test_demo_prints_url_shows_media_and_stops_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        BIN / "vcalld",
        "demo",
        "--port",
        "0",
        "--with-peer",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        url = first.split("open ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200 and "vcalld" in await response.text()
        async with asyncio.timeout(30):
            while (
                "demo-peer (connected): 640x480"
                not in (line := await process.stdout.readline()).decode()
            ):
                assert line, "demo ended before showing the peer's video"
        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), 15)).decode()
        assert await process.wait() == 0
        assert "media from demo-peer arrived" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
