"""Drives tools/testbed/testbed.sh: a Debian 12 VM with systemd as PID 1, and ARM chroots."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "tools" / "testbed" / "testbed.sh"
DIST = ROOT / "dist"
T = TypeVar("T")


# Readable by the vcalld group, as a kiosk's secrets are kept (the room server runs as root).
ROOM_SECRET_FILE = "/etc/vcalld/room-secret"
ROOM_SERVER_CONFIG = textwrap.dedent(f"""\
    [room_server]
    host = "127.0.0.1"
    port = 8080
    token_secret_file = "{ROOM_SECRET_FILE}"
    """)


def device_config(device_id: str, socket: str, *, video: bool = True) -> str:
    """Small video (or none) so two daemons fit the emulated CPU; content is checked, not
    speed."""
    config = textwrap.dedent(f"""\
        [device]
        id = "{device_id}"
        [call]
        server_url = "ws://127.0.0.1:8080/ws"
        room = "hall"
        ice_host_addresses = ["127.0.0.1"]
        reconnect_max_seconds = 1.0
        room_secret_file = "{ROOM_SECRET_FILE}"
        [video]
        width = 160
        height = 120
        fps = 10
        [audio]
        tone_frequency_hz = 880.0
        [control]
        socket = "{socket}"
        """)
    return config if video else config.replace("[video]\n", "[video]\nenabled = false\n")


# The guest talks to the control socket with its own python3 and nothing but `socket` (HTTP/1.0,
# `python3 -I -S`): `vcallctl` imports the whole stack, seconds per call on the emulated CPU,
# and even http.client costs 0.5 s there; polling with it took a core from the daemons the
# tests measure, whose audio then broke up. A third argument is a command's JSON body, POSTed.
CONTROL_SCRIPT = """\
import socket, sys
address, path = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else b""
method = "POST" if len(sys.argv) > 3 else "GET"
with socket.socket(socket.AF_UNIX) as connection:
    connection.connect(address)
    head = f"{method} {path} HTTP/1.0\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
    connection.sendall(head.encode() + body)
    reply = b"".join(iter(lambda: connection.recv(65536), b""))
print(reply.partition(b"\\r\\n\\r\\n")[2].decode())
"""
CONTROL_CLIENT = "python3 -I -S /root/control.py"


def built_deb(arch: str) -> Path:
    """The package `make deb ARCH=<arch>` left in dist/; the package tests exist to test it."""
    debs = sorted(DIST.glob(f"vcalld_*_{arch}.deb"))
    if not debs:
        raise FileNotFoundError(f"no dist/vcalld_*_{arch}.deb: run `make deb ARCH={arch}` first")
    return debs[-1]


def testbed(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float) -> str:
    """Runs testbed.sh; its output, or GuestCommandError on a non-zero exit."""
    result = subprocess.run(
        [str(TESTBED), *args],
        check=False,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise GuestCommandError(args, result.returncode, result.stdout, result.stderr)
    return result.stdout


class Guest:
    """Somewhere `run` executes a bash script as root: the VM or an ARM chroot."""

    def run(self, script: str, timeout: float = 120) -> str:
        raise NotImplementedError

    def status(self, script: str, timeout: float = 120) -> int:
        try:
            self.run(script, timeout)
        except GuestCommandError as failed:
            return failed.returncode
        return 0

    def json(self, script: str) -> Any:
        return json.loads(self.run(script))


@dataclass
class ArmChroot(Guest):
    """The test bed's arm64/armhf Debian 12 chroot (qemu-user); no systemd runs in it."""

    arch: str

    def run(self, script: str, timeout: float = 120) -> str:
        return testbed("arm-run", self.arch, "bash -es", env={}, stdin=script, timeout=timeout)

    def install_deb(self, deb: Path) -> str:
        return testbed("arm-install-deb", self.arch, str(deb), env={}, timeout=900)


@dataclass
class Testbed(Guest):
    """One test bed VM instance (Debian 12, systemd as PID 1, restricted network)."""

    __test__ = False  # not a test class, whatever its name

    name: str

    def _command(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        return testbed(*args, env={"TESTBED_NAME": self.name}, stdin=stdin, timeout=timeout)

    def boot(self) -> None:
        self._command("boot", timeout=600)

    def stop(self) -> None:
        self._command("stop", "--kill", timeout=60)

    def run(self, script: str, timeout: float = 120) -> str:
        """Runs `script` with bash -e in the guest; raises GuestCommandError on a non-zero exit."""
        return self._command("run", "bash", "-es", stdin=script, timeout=timeout)

    def write(self, path: str, content: str) -> None:
        self._command("run", f"cat > {shlex.quote(path)}", stdin=content, timeout=30)

    def install_deb(self, deb: Path) -> str:
        return self._command("install-deb", str(deb), timeout=600)

    def screen(self) -> np.ndarray:
        """What the VM's display shows, height x width x RGB, as QEMU itself shows it."""
        with tempfile.TemporaryDirectory() as scratch:
            picture = Path(scratch) / "screen.ppm"
            self._command("screendump", str(picture), timeout=60)
            with av.open(str(picture)) as image:
                return next(image.decode(video=0)).to_ndarray(format="rgb24")

    def unit_property(self, unit: str, name: str) -> str:
        return self.run(f"systemctl show -P {name} {unit}").strip()


def until(check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Polls `check` until it returns something truthy, and returns that."""
    started = time.monotonic()
    while not (value := check()):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not true within {timeout} s; last: {value!r}")
        time.sleep(interval)
    return value


class GuestCommandError(Exception):
    def __init__(self, args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"testbed {' '.join(args)} exited {returncode}:\n{stdout}\n{stderr}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
