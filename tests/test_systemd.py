"""`vcalld run` under the sd_notify protocol, with the test standing where systemd stands:
a datagram socket in NOTIFY_SOCKET. (The unit itself runs under real systemd in the test bed.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.helpers import (
    eventually,
    running,
    vcalld_process,
    write_daemon_config,
)
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer

pytestmark = pytest.mark.slow
WATCHDOG_SECONDS = 1.0


class NotifySocket:
    """Collects sd_notify datagrams; each is a set of KEY=value lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.setblocking(False)
        self.received: list[dict[str, str]] = []

    async def expect(
        self, wanted: Callable[[dict[str, str]], bool], within: float = 15
    ) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                while True:
                    data = await loop.sock_recv(self._socket, 4096)
                    message = dict(line.split("=", 1) for line in data.decode().splitlines())
                    self.received.append(message)
                    if wanted(message):
                        return message
        except TimeoutError:
            raise AssertionError(f"not notified within {within} s: {self.received}") from None

    def close(self) -> None:
        self._socket.close()


@asynccontextmanager
async def supervised_kiosk(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    folder: Path,
) -> AsyncIterator[tuple[Daemon, asyncio.subprocess.Process, NotifySocket]]:
    """A peer in the room, and `vcalld run` (device "kiosk") reporting to us as to systemd."""
    config_file, _ = write_daemon_config(
        folder, "kiosk", room_server.port, room_secret_file=room_secret_file
    )
    notify = NotifySocket(folder / "notify.sock")
    environment = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": str(int(WATCHDOG_SECONDS * 1_000_000)),
    }
    try:
        async with (
            running(daemon_config(room_server, "peer")) as peer,
            vcalld_process(config_file, environment) as process,
        ):
            yield peer, process, notify
    finally:
        notify.close()


def status(text: str) -> Callable[[dict[str, str]], bool]:
    return lambda message: text in message.get("STATUS", "")


async def test_ready_status_watchdog_and_a_graceful_stop(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    tmp_path: Path,
) -> None:
    async with supervised_kiosk(room_server, room_secret_file, daemon_config, tmp_path) as (
        peer,
        process,
        notify,
    ):
        ready = await notify.expect(lambda message: "READY" in message)
        assert ready["READY"] == "1" and ready["STATUS"].startswith("connecting in test"), ready
        await notify.expect(status("in-call in test; 1 participant"))
        await eventually(lambda: peer.state.current.participants, 10)

        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):
            await notify.expect(
                lambda message: message.get("WATCHDOG") == "1", 2 * WATCHDOG_SECONDS
            )
        assert loop.time() - started < 4 * WATCHDOG_SECONDS  # pinged at half the period

        process.send_signal(signal.SIGTERM)
        stopping = await notify.expect(lambda message: "STOPPING" in message)
        assert stopping["STOPPING"] == "1"
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await eventually(lambda: not peer.state.current.participants, 10)


async def test_sighup_applies_a_valid_config_and_refuses_a_bad_one(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "kiosk.toml"
    async with supervised_kiosk(room_server, room_secret_file, daemon_config, tmp_path) as (
        peer,
        process,
        notify,
    ):
        await notify.expect(status("in-call in test; 1 participant"))

        write_daemon_config(
            tmp_path, "kiosk", room_server.port, room="hall", room_secret_file=room_secret_file
        )
        process.send_signal(signal.SIGHUP)
        await notify.expect(lambda message: message.get("RELOADING") == "1")
        await notify.expect(lambda message: message.get("READY") == "1")
        await notify.expect(status("in-call in hall"))
        await eventually(lambda: not peer.state.current.participants, 10)

        config_file.write_text(config_file.read_text() + "[video]\nwidht = 640\n")
        process.send_signal(signal.SIGHUP)
        refused = await notify.expect(status("reload refused"))
        assert f"error: reload refused: 1 error in {config_file}" in refused["STATUS"], refused
        await asyncio.sleep(1.0)
        assert process.returncode is None
        assert "in-call in hall" in refused["STATUS"], "the call goes on with the old config"


@pytest.mark.parametrize("matches", [True, False])
def test_logs_go_to_the_journal_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, matches: bool
) -> None:
    stderr_file = tmp_path / "stderr"
    stderr_file.touch()
    status = stderr_file.stat()
    stream = f"{status.st_dev}:{status.st_ino + (0 if matches else 1)}"
    with stderr_file.open("w") as stderr:
        probe = subprocess.run(
            [sys.executable, "-c", "from vcalld.logs import stderr_is_journal as j; print(j())"],
            env={**os.environ, "JOURNAL_STREAM": stream},
            stderr=stderr,
            stdout=subprocess.PIPE,
            check=True,
        )
    assert probe.stdout.decode().strip() == str(matches)


UNIT = Path(__file__).parent.parent / "systemd"


def test_the_unit_is_hardened_to_an_exposure_of_at_most_2() -> None:
    analysis = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT / "vcalld.service")],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = analysis.stdout.strip().splitlines()[-1]
    exposure = float(summary.split("vcalld.service: ", 1)[1].split()[0])
    assert exposure <= 2.0, summary


def test_sysusers_creates_the_user_in_the_device_groups(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nvideo:x:44:\naudio:x:29:\nrender:x:105:\n")
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNIT / "vcalld.sysusers")], check=True
    )
    user = next(
        line for line in (etc / "passwd").read_text().splitlines() if line.startswith("vcalld:")
    )
    assert user.split(":")[5:] == ["/var/lib/vcalld", "/usr/sbin/nologin"], user
    groups = {
        line.split(":")[0]: line.split(":")[3] for line in (etc / "group").read_text().splitlines()
    }
    assert groups["vcalld"] == "" and all(
        groups[g] == "vcalld" for g in ("video", "audio", "render")
    )
