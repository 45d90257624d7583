"""Sending video: the sender's CPU for one 720p30 stream to 1 and to 6 peers, and for
1080p60 (the H.264 passthrough path, and VP8 encoded by us), with headless Chromium sending
the same in the same run.

The peers are lightweight mesh members (bench/mesh_crowd.py): they connect to the sender
only, send it a tone and no video, and decode the video they get, reporting its frame
rate; their bandwidth estimate starts at the picture's start bitrate, as a daemon's does,
for either sender. So the sender's CPU is what sending costs: capture or pattern, encoding,
packetising, encryption, and the peers' audio. vcalld sends the stamped test pattern
(`vcalld run`); the passthrough row sends the pattern encoded as H.264 beforehand
(bench/video_sender.py: what a camera's own H.264 costs the daemon); Chromium sends the same
pattern from a Y4M file through its fake camera, with our browser client, its track's
content hint "detail" so that it keeps the picture's size as vcalld does (without it, the
plain aiortc peers' bandwidth estimates had it send 960x540 and 640x360).

    make bench-video-send      # BENCH_ARGS="--window 20" to change the measuring window
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.join_and_cpu import usage
from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_pattern_clip, write_tone_wav
from tests.helpers import BIN, eventually
from tests.janus_crowd import Crowd, crowd_processes
from vcalld.config.models import RoomServerConfig, VideoConfig
from vcalld.control.client import control_request
from vcalld.media.video_codecs import bitrates_for
from vcalld.room.server import RoomServer

ROOM = "send"
WARM_UP_SECONDS = 40.0
SETTLE_SECONDS = 8.0  # bandwidth estimates ramp up, Chromium adapts its resolution
CLIP_SECONDS = 1  # of the Y4M loop Chromium's fake camera plays
HEADER = [
    "sender",
    "picture",
    "peers",
    "CPU % of a core",
    "vs 1 peer",
    "upload kbit/s",
    "fps at the peers (lowest / median)",
    "sent as",
]


@dataclass(frozen=True)
class Scenario:
    sender: str  # "vcalld", "vcalld-passthrough" or "chromium"
    width: int
    height: int
    fps: int
    peers: int
    encode_once: bool = False

    @property
    def label(self) -> str:
        return {
            "vcalld": "vcalld, encoded once" if self.encode_once else "vcalld, encoder per peer",
            "vcalld-passthrough": "vcalld, H.264 passed through",
            "chromium": "Chromium",
        }[self.sender]

    @property
    def picture(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}"


SCENARIOS = [
    *(Scenario("vcalld", 1280, 720, 30, peers, encode_once=True) for peers in (1, 6)),
    *(Scenario("vcalld", 1280, 720, 30, peers) for peers in (1, 6)),
    *(Scenario("chromium", 1280, 720, 30, peers) for peers in (1, 6)),
    Scenario("vcalld-passthrough", 1920, 1080, 60, 1),
    Scenario("vcalld", 1920, 1080, 60, 1),
    Scenario("chromium", 1920, 1080, 60, 1),
]


@dataclass
class Measured:
    cpu_percent: float
    upload_kbps: float
    fps: list[float]
    sent_as: str


def members(count: int) -> list[str]:
    return [f"peer-{index}" for index in range(1, count + 1)]


@contextlib.asynccontextmanager
async def peers(server: RoomServer, scenario: Scenario, sender: str) -> AsyncIterator[Crowd]:
    url = f"ws://127.0.0.1:{server.port}/ws"
    arguments = ["--server", url, "--room", ROOM, "--peer", sender, "--width", "0"]
    start = bitrates_for(
        scenario.width, scenario.height, scenario.fps, minimum_kbps=VideoConfig().min_bitrate_kbps
    ).start
    arguments += ["--start-kbps", str(start // 1000)]
    async with crowd_processes("bench.mesh_crowd", members(scenario.peers), arguments) as crowd:
        yield crowd


def received_fps(crowd: Crowd, scenario: Scenario, sender: str) -> list[float]:
    return [crowd.fps.get(name, {}).get(sender, 0.0) for name in members(scenario.peers)]


async def all_receiving(crowd: Crowd, scenario: Scenario, sender: str) -> bool:
    return all(received_fps(crowd, scenario, sender))


# vcalld ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def vcalld_sender(
    server: RoomServer, scenario: Scenario, work: Path
) -> AsyncIterator[tuple[Path, int]]:
    """The sending daemon as a process of its own; yields its control socket and pid."""
    folder = Path(tempfile.mkdtemp(dir=work))
    socket, config = folder / "kiosk.sock", folder / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "kiosk"\n[control]\nsocket = "{socket}"\n'
        f'[call]\nserver_url = "ws://127.0.0.1:{server.port}/ws"\nroom = "{ROOM}"\n'
        'auto_join = true\nice_host_addresses = ["127.0.0.1"]\n'
        f"[video]\nwidth = {scenario.width}\nheight = {scenario.height}\nfps = {scenario.fps}\n"
        f"encode_once = {str(scenario.encode_once).lower()}\n"
    )
    if scenario.sender == "vcalld-passthrough":
        size = ["--width", str(scenario.width), "--height", str(scenario.height)]
        command = [sys.executable, "-m", "bench.video_sender", "--config", str(config), *size]
        command += ["--fps", str(scenario.fps)]
    else:
        command = [str(BIN / "vcalld"), "run", "--config", str(config)]
    log = (folder / "kiosk.log").open("wb")
    process = await asyncio.create_subprocess_exec(*command, stderr=log)
    try:
        await eventually(lambda: in_call(socket), 30, 0.5)
        yield socket, process.pid
    finally:
        process.kill()
        await process.wait()
        log.close()


async def in_call(socket: Path) -> bool:
    try:
        _, state = await control_request(socket, "state")
    except OSError:  # not listening yet
        return False
    return bool(state["call"] == "in-call")


async def measure_vcalld(
    server: RoomServer, scenario: Scenario, work: Path, window: float
) -> Measured:
    async with (
        vcalld_sender(server, scenario, work) as (socket, pid),
        peers(server, scenario, "kiosk") as crowd,
    ):
        await eventually(lambda: all_receiving(crowd, scenario, "kiosk"), WARM_UP_SECONDS, 1)
        await asyncio.sleep(SETTLE_SECONDS)
        await control_request(socket, "stats")  # the rates are between this sample and the next
        cpu = (await usage({"kiosk": pid}, window))["kiosk"][0]
        _, stats = await control_request(socket, "stats")
        upload = sum(participant["send_kbps"] or 0 for participant in stats["participants"])
        codec = "H.264" if scenario.sender == "vcalld-passthrough" else "VP8"
        return Measured(cpu, upload, received_fps(crowd, scenario, "kiosk"), codec)


# Chromium --------------------------------------------------------------------------------------

CHROMIUM_SENT = """(async () => {
  let bytes = 0;
  const pictures = new Set();
  for (const entry of Object.values(await vcall.stats())) {
    for (const sent of Object.values(entry.outbound)) bytes += sent.bytesSent || 0;
    const video = entry.outbound.video;
    if (video && video.frameWidth) {
      pictures.add(`${video.frameWidth}x${video.frameHeight} (${video.qualityLimitationReason})`);
    }
  }
  return { bytes, at: performance.now() / 1000, pictures: [...pictures] };
})()"""


async def measure_chromium(
    server: RoomServer, scenario: Scenario, work: Path, window: float
) -> Measured:
    clip = work / f"pattern-{scenario.picture}.y4m"
    if not clip.exists():
        frames = CLIP_SECONDS * scenario.fps
        write_pattern_clip(clip, scenario.width, scenario.height, scenario.fps, frames)
    wav = write_tone_wav(work / "tone.wav", 660.0, seconds=2)
    query = urlencode({"room": ROOM, "name": "chromium", "autojoin": "1"})
    url = f"http://127.0.0.1:{server.port}/?{query}"
    async with chromium_page(url, video_clip=clip, audio_wav=wav) as page:
        await eventually(lambda: joined(page), 30, 0.5)
        # Keep the picture's size (lower quality or rate instead), as vcalld does: its
        # peers' estimates would otherwise have Chromium send a smaller picture.
        await page.evaluate("vcall.localStream.getVideoTracks()[0].contentHint = 'detail'")
        async with peers(server, scenario, "chromium") as crowd:
            await eventually(lambda: all_receiving(crowd, scenario, "chromium"), WARM_UP_SECONDS, 1)
            await asyncio.sleep(SETTLE_SECONDS)
            before = await page.evaluate(CHROMIUM_SENT)
            cpu = (await usage({"chromium": page.browser_pid}, window))["chromium"][0]
            after: dict[str, Any] = await page.evaluate(CHROMIUM_SENT)
            seconds = after["at"] - before["at"]
            upload = 8 * (after["bytes"] - before["bytes"]) / seconds / 1000
            sent_as = "VP8 " + ", ".join(after["pictures"])
            return Measured(cpu, upload, received_fps(crowd, scenario, "chromium"), sent_as)


async def joined(page: Page) -> bool:
    script = "typeof vcall === 'object' && Boolean(vcall.ws && vcall.ws.readyState === 1)"
    return bool(await page.evaluate(script))


# The run ---------------------------------------------------------------------------------------


def row(scenario: Scenario, measured: Measured, one_peer: Measured | None) -> list[str]:
    fps = measured.fps or [0.0]
    ratio = f"{measured.cpu_percent / one_peer.cpu_percent:.2f}x" if one_peer else "-"
    return [
        scenario.label,
        scenario.picture,
        str(scenario.peers),
        f"{measured.cpu_percent:.1f}",
        ratio if scenario.peers > 1 else "-",
        f"{measured.upload_kbps:.0f}",
        f"{min(fps):.1f} / {statistics.median(fps):.1f}",
        measured.sent_as,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=15.0, help="CPU window in seconds")
    senders = sorted({scenario.sender for scenario in SCENARIOS})
    parser.add_argument("--senders", nargs="*", default=senders, choices=senders)
    args = parser.parse_args()
    server = RoomServer(RoomServerConfig(port=0, max_participants=8))
    await server.start()
    rows = []
    single: dict[tuple[str, bool, str], Measured] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="vcalld-bench-") as folder:
            for scenario in (s for s in SCENARIOS if s.sender in args.senders):
                measure = measure_chromium if scenario.sender == "chromium" else measure_vcalld
                measured = await measure(server, scenario, Path(folder), args.window)
                key = (scenario.sender, scenario.encode_once, scenario.picture)
                if scenario.peers == 1:
                    single[key] = measured
                rows.append(row(scenario, measured, single.get(key)))
                print(" | ".join(rows[-1]), flush=True)
    finally:
        await server.stop()
    print()
    print(markdown_table(HEADER, rows))
    print(f"\n`make bench-video-send BENCH_ARGS='--window {args.window:g}'`")


if __name__ == "__main__":
    asyncio.run(main())
