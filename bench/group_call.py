"""A 7-person video call seen from one participant: vcalld through Janus, vcalld in a mesh
(its video encoded for each of the six peers, and once for all, `[video] encode_once`), and
headless Chromium (Janus's own demo page) through Janus, in the same run.

The six other members are lightweight (tests/janus_crowd.py, bench/mesh_crowd.py): they send
320x180 at 25 fps and connect to the measured participant only, so the machine's two cores
go to it. The measured participant sends 640x480 at 30 fps. Prints one Markdown table:
CPU (% of one core), upload and download (kbit/s), and the frame rate it receives from each
remote (lowest and median); Janus's own CPU where it relays.

    make bench-group            # BENCH_ARGS="--window 20" to change the measuring window
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.join_and_cpu import usage
from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_pattern_clip, write_tone_wav
from tests.helpers import VCALLD_RUN, eventually, vcalld_process
from tests.janus import ICE_ADDRESS, WS_URL, Janus, demo_pages, join_demo_room
from tests.janus_crowd import crowd, crowd_processes
from vcalld.config.models import RoomServerConfig
from vcalld.control.client import control_request
from vcalld.room.server import RoomServer

MEMBERS = [f"member-{index}" for index in range(1, 7)]
CROWD_SIZE = (320, 180, 25)
ROOM = "1234"
WARM_UP_SECONDS = 40.0
# Collects the demo page's peer connections, which janus.js keeps to itself.
PEER_CONNECTIONS = """
window.benchConnections = [];
const NativeConnection = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) {
  const pc = new NativeConnection(...args);
  window.benchConnections.push(pc);
  return pc;
};
window.RTCPeerConnection.prototype = NativeConnection.prototype;
Object.setPrototypeOf(window.RTCPeerConnection, NativeConnection);
"""
CHROMIUM_TOTALS = """(async () => {
  let sent = 0, received = 0;
  const fps = [];
  for (const pc of window.benchConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "transport") { sent += s.bytesSent; received += s.bytesReceived; }
      if (s.type === "inbound-rtp" && s.kind === "video") fps.push(s.framesPerSecond || 0);
    });
  }
  return { sent, received, fps, at: performance.now() / 1000 };
})()"""


@dataclass
class Row:
    scenario: str
    connections: int = 0
    cpu_percent: float = 0.0
    janus_cpu_percent: float | None = None
    upload_kbps: float = 0.0
    download_kbps: float = 0.0
    fps: list[float] | None = None

    def cells(self) -> list[str]:
        fps = self.fps or [0.0]
        janus = "-" if self.janus_cpu_percent is None else f"{self.janus_cpu_percent:.1f}"
        return [
            self.scenario,
            str(self.connections),
            f"{self.cpu_percent:.1f}",
            janus,
            f"{self.upload_kbps:.0f}",
            f"{self.download_kbps:.0f}",
            f"{min(fps):.1f} / {statistics.median(fps):.1f} ({len(fps)})",
        ]


async def daemon_stats(socket: Path) -> dict[str, Any]:
    _, stats = await control_request(socket, "stats")
    result: dict[str, Any] = stats
    return result


async def measure_daemon(
    row: Row, socket: Path, pid: int, window: float, janus: Janus | None
) -> Row:
    """The daemon's CPU, and its call stats' rates, over the same window."""

    async def all_remotes_flow() -> bool:
        participants = (await daemon_stats(socket))["participants"]
        return len(participants) == len(MEMBERS) and all(p["fps"] for p in participants)

    await eventually(all_remotes_flow, WARM_UP_SECONDS, 1.0)
    await asyncio.sleep(5)  # bandwidth estimates settle
    await daemon_stats(socket)  # rates are between this sample and the next
    pids = {"daemon": pid} | ({"janus": janus.pid} if janus is not None else {})
    measured = await usage(pids, window)
    stats = await daemon_stats(socket)
    participants = stats["participants"]
    upload = stats.get("upload") or {}
    row.connections = len(participants) + (1 if upload else 0)
    row.cpu_percent = measured["daemon"][0]
    row.janus_cpu_percent = measured["janus"][0] if janus is not None else None
    row.upload_kbps = (upload.get("send_kbps") or 0) + sum(p["send_kbps"] for p in participants)
    row.download_kbps = sum(p["receive_kbps"] for p in participants)
    row.fps = [p["fps"] or 0.0 for p in participants]
    return row


@asynccontextmanager
async def kiosk(
    work: Path, call: str, more: str = "", program: Sequence[str | Path] = VCALLD_RUN
) -> AsyncIterator[tuple[Path, int]]:
    """`vcalld run` (or `program`) with the packaged defaults (a 640x480 test pattern at
    30 fps), the `[call]` lines given and `more` sections; yields its control socket and
    pid."""
    folder = Path(tempfile.mkdtemp(dir=work))  # a socket left by the last run is not ours
    socket = folder / "kiosk.sock"
    config = folder / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "kiosk"\n[control]\nsocket = "{socket}"\n'
        f'[call]\nroom = "{ROOM}"\nauto_join = true\n{call}{more}'
    )
    async with vcalld_process(config, program=program) as process:
        await eventually(socket.exists, 10)
        yield socket, process.pid


async def vcalld_through_janus(work: Path, janus: Janus, window: float) -> Row:
    call = (
        f'backend = "janus"\nice_host_addresses = ["{ICE_ADDRESS}"]\n'
        f'[call.janus]\nurls = ["{WS_URL}"]\n'
    )
    async with (
        kiosk(work, call) as (socket, pid),
        crowd(MEMBERS, ROOM, CROWD_SIZE, watch="kiosk"),
    ):
        return await measure_daemon(Row("vcalld via Janus"), socket, pid, window, janus)


async def vcalld_in_mesh(work: Path, window: float, encode_once: bool = False) -> Row:
    server = RoomServer(RoomServerConfig(port=0, max_participants=8, anonymous=True))
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/ws"
        call = f'server_url = "{url}"\nice_host_addresses = ["127.0.0.1"]\n'
        arguments = ["--server", url, "--room", ROOM, "--peer", "kiosk"]
        more = "[video]\nencode_once = true\n" if encode_once else ""
        name = "vcalld in a mesh, encoded once" if encode_once else "vcalld in a mesh"
        async with (
            kiosk(work, call, more) as (socket, pid),
            crowd_processes("bench.mesh_crowd", MEMBERS, arguments),
        ):
            return await measure_daemon(Row(name), socket, pid, window, None)
    finally:
        await server.stop()


async def chromium_through_janus(work: Path, janus: Janus, window: float) -> Row:
    clip = write_pattern_clip(work / "pattern.y4m", 640, 480, 30, frames=60)
    wav = write_tone_wav(work / "tone.wav", 660.0, seconds=2)
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(demo_pages())
        url = f"{base}/videoroomtest.html?room={ROOM}"
        page = await stack.enter_async_context(chromium_page(url, video_clip=clip, audio_wav=wav))
        await page.call("Page.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=PEER_CONNECTIONS)
        await page.call("Page.reload")
        await eventually(lambda: page.evaluate("Array.isArray(window.benchConnections)"), 10)
        await join_demo_room(page, "chromium")
        await stack.enter_async_context(crowd(MEMBERS, ROOM, CROWD_SIZE, watch="chromium"))
        return await measure_chromium(page, janus, window)


async def measure_chromium(page: Page, janus: Janus, window: float) -> Row:
    async def all_remotes_flow() -> bool:
        fps = (await page.evaluate(CHROMIUM_TOTALS))["fps"]
        return len(fps) == len(MEMBERS) and all(fps)

    await eventually(all_remotes_flow, WARM_UP_SECONDS, 1.0)
    await asyncio.sleep(5)
    before = await page.evaluate(CHROMIUM_TOTALS)
    measured = await usage({"chromium": page.browser_pid, "janus": janus.pid}, window)
    after = await page.evaluate(CHROMIUM_TOTALS)
    seconds = after["at"] - before["at"]
    return Row(
        "Chromium (Janus demo page) via Janus",
        connections=len(after["fps"]) + 1,
        cpu_percent=measured["chromium"][0],
        janus_cpu_percent=measured["janus"][0],
        upload_kbps=8 * (after["sent"] - before["sent"]) / seconds / 1000,
        download_kbps=8 * (after["received"] - before["received"]) / seconds / 1000,
        fps=after["fps"],
    )


async def run(window: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="vcalld-group-") as folder:
        work = Path(folder)
        janus = Janus(work)
        await asyncio.to_thread(janus.start)
        try:
            scenarios: list[Callable[[], Awaitable[Row]]] = [
                lambda: vcalld_through_janus(work, janus, window),
                lambda: vcalld_in_mesh(work, window),
                lambda: vcalld_in_mesh(work, window, encode_once=True),
                lambda: chromium_through_janus(work, janus, window),
            ]
            return [await scenario() for scenario in scenarios]
        finally:
            await asyncio.to_thread(janus.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    arguments = parser.parse_args()
    rows = asyncio.run(run(arguments.window))
    header = [
        "7-person call, one participant",
        "connections",
        "CPU %",
        "Janus CPU %",
        "upload kbit/s",
        "download kbit/s",
        "fps per remote: min / median (remotes)",
    ]
    print(markdown_table(header, [row.cells() for row in rows]))
    print(f"\n{arguments.window:.0f} s windows; CPU in % of one core.")


if __name__ == "__main__":
    main()
