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

from bench.group_call import ROOM, kiosk
from bench.join_and_cpu import CHROMIUM_SENT, chromium_sent_kbps, usage
from bench.picture import Picture
from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_pattern_clip, write_tone_wav
from tests.helpers import VCALLD_RUN, eventually
from tests.janus_crowd import Crowd, crowd_processes
from vcalld.config.models import RoomServerConfig, VideoConfig
from vcalld.control.client import control_request
from vcalld.media.video_codecs import bitrates_for
from vcalld.room.server import RoomServer

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
    picture: Picture
    peers: int
    encode_once: bool = False

    @property
    def label(self) -> str:
        return {
            "vcalld": "vcalld, encoded once" if self.encode_once else "vcalld, encoder per peer",
            "vcalld-passthrough": "vcalld, H.264 passed through",
            "chromium": "Chromium",
        }[self.sender]


HD, FULL_HD_60 = Picture(1280, 720, 30), Picture(1920, 1080, 60)
SCENARIOS = [
    *(Scenario("vcalld", HD, peers, encode_once=True) for peers in (1, 6)),
    *(Scenario("vcalld", HD, peers) for peers in (1, 6)),
    *(Scenario("chromium", HD, peers) for peers in (1, 6)),
    Scenario("vcalld-passthrough", FULL_HD_60, 1),
    Scenario("vcalld", FULL_HD_60, 1),
    Scenario("chromium", FULL_HD_60, 1),
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
    picture = scenario.picture
    minimum = VideoConfig().min_bitrate_kbps
    start = bitrates_for(picture.width, picture.height, picture.fps, minimum_kbps=minimum).start
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
    """The sending daemon as a process of its own, in the call; yields its control socket
    and pid."""
    call = f'server_url = "ws://127.0.0.1:{server.port}/ws"\nice_host_addresses = ["127.0.0.1"]\n'
    video = scenario.picture.video_section()
    video += f"encode_once = {str(scenario.encode_once).lower()}\n"
    passthrough = scenario.sender == "vcalld-passthrough"
    program = (sys.executable, "-m", "bench.video_sender") if passthrough else VCALLD_RUN
    async with kiosk(work, call, video, program) as (socket, pid):
        await eventually(lambda: in_call(socket), 30, 0.5)
        yield socket, pid


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


async def measure_chromium(
    server: RoomServer, scenario: Scenario, work: Path, window: float
) -> Measured:
    picture = scenario.picture
    clip = work / f"pattern-{picture.width}x{picture.height}-{picture.fps}.y4m"
    if not clip.exists():
        frames = CLIP_SECONDS * picture.fps
        write_pattern_clip(clip, picture.width, picture.height, picture.fps, frames)
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
            upload = chromium_sent_kbps(before, after)
            sent_as = "VP8 " + ", ".join(sorted(set(after["pictures"])))
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
        str(scenario.picture),
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
    server = RoomServer(RoomServerConfig(port=0, max_participants=8, anonymous=True))
    await server.start()
    rows = []
    single: dict[tuple[str, bool, Picture], Measured] = {}
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
