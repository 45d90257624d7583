"""Debian's Janus, run by the test with the repo's config (config/janus), loopback only.

Janus never gathers ICE candidates on a loopback interface, and libnice pins each socket to
its interface, so the test's network namespace gets a veth `jl0` holding 127.0.0.2 and
every peer (Janus, daemons, Chromium) uses that address (../shared/notes/interop.md, 3c).
Nothing leaves the namespace: the address is local and the kernel delivers it through `lo`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from tests.chromium import Page
from tests.helpers import eventually, serving, wait_until_listening

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "janus"
JANUS = "/usr/bin/janus"
ICE_ADDRESS = "127.0.0.2"
INTERFACE = "jl0"
WS_URL = "ws://127.0.0.1:8188/"
HTTP_URL = "http://127.0.0.1:8088/janus"
START_SECONDS = 10.0
DEMOS = Path("/usr/share/janus/demos")
# Debian's settings.js leaves out the token and apisecret globals the demos read, and its
# `iceServers = null` makes janus.js log an error (../shared/notes/interop.md, 3c).
DEMO_SETTINGS = f"""
var server = "{HTTP_URL}";
var iceServers = [];
var token = null;
var apisecret = null;
"""


def add_ice_interface() -> None:
    """The veth with 127.0.0.2 (once per namespace; the tests run in their own)."""
    # Not /sys/class/net: sysfs shows the namespace it was mounted in, not ours.
    probe = subprocess.run(["ip", "link", "show", INTERFACE], check=False, capture_output=True)
    if probe.returncode == 0:
        return
    for command in (
        f"ip link add {INTERFACE} type veth peer name {INTERFACE}-peer",
        f"ip addr add {ICE_ADDRESS}/32 dev {INTERFACE}",
        f"ip link set {INTERFACE} up",
        f"ip link set {INTERFACE}-peer up",
    ):
        subprocess.run(command.split(), check=True)


class Janus:
    """`api_secret` and `token_secret` (HMAC-signed tokens) turn Janus's API auth on;
    `session_timeout` shortens the 60 s after which Janus ends a silent session."""

    def __init__(
        self,
        folder: Path,
        api_secret: str | None = None,
        token_secret: str | None = None,
        session_timeout: int | None = None,
    ) -> None:
        self.folder = folder
        configs = REPO_CONFIG
        if token_secret:
            configs = _with_token_auth(folder / "config", token_secret)
        self.options = [
            f"--configs-folder={configs}",
            f"--config={configs / 'janus.jcfg'}",
            f"--ice-enforce-list={INTERFACE}",
            f"--interface={ICE_ADDRESS}",
            "--rtp-port-range=20000-20999",
            "--disable-stdout",
            "--disable-colors",
            f"--log-file={folder / 'janus.log'}",
        ]
        if api_secret:
            self.options.append(f"--apisecret={api_secret}")
        if session_timeout:
            self.options.append(f"--session-timeout={session_timeout}")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Blocking until both APIs accept connections (async callers: `asyncio.to_thread`)."""
        add_ice_interface()
        self._process = subprocess.Popen([JANUS, *self.options], stdout=subprocess.DEVNULL)
        wait_until_listening(self._process, (8188, 8088), START_SECONDS, self.log)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "janus is not running"
        return self._process.pid

    def log(self) -> str:
        path = self.folder / "janus.log"
        return path.read_text(errors="replace")[-20000:] if path.exists() else ""


def _with_token_auth(folder: Path, secret: str) -> Path:
    """The repo's config with its commented-out HMAC token lines turned on (Janus 1.1.2
    misreads --token-auth-secret as a number)."""
    shutil.copytree(REPO_CONFIG, folder)
    main = folder / "janus.jcfg"
    text = main.read_text()
    commented = '#token_auth = true\n\t#token_auth_secret = "change-me"'
    assert commented in text, "config/janus/janus.jcfg no longer has the token lines"
    main.write_text(text.replace(commented, f'token_auth = true\n\ttoken_auth_secret = "{secret}"'))
    return folder


def janus_call(
    room: str, urls: list[str] | None = None, janus: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The `[call]` section of a daemon in `room` through the test's Janus; `janus` adds to
    its `[call.janus]`."""
    return {
        "backend": "janus",
        "room": room,
        "auto_join": True,
        "ice_host_addresses": [ICE_ADDRESS],
        "janus": {"urls": urls or [WS_URL], **(janus or {})},
    }


@asynccontextmanager
async def demo_pages() -> AsyncIterator[str]:
    """Janus's own demo pages (package janus-demos) on loopback; yields their base URL."""
    app = web.Application()

    async def settings(request: web.Request) -> web.Response:
        return web.Response(text=DEMO_SETTINGS, content_type="application/javascript")

    app.router.add_get("/settings.js", settings)
    app.router.add_static("/", DEMOS, follow_symlinks=True)
    async with serving(app) as url:
        yield url


def _bound(selector: str) -> str:
    """JS: whether the demo's jQuery click handler on `selector` is in place yet."""
    element = f"(window.$ && $({selector!r})[0])"
    return f"!!({element} && $._data({element}, 'events')?.click)"


async def join_demo_room(page: Page, display: str) -> None:
    """Start, then register: what a person does on videoroomtest.html. Start is clicked
    exactly once; the same button then becomes Stop, which would end the session."""
    await eventually(lambda: page.evaluate(_bound("#start")), 15)
    await page.evaluate("$('#start').click()")
    await eventually(lambda: page.evaluate(_bound("#register")), 15)
    await page.evaluate(f"$('#username').val({display!r}); $('#register').click()")
