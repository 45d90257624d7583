"""Join time and CPU of a two-way call (640x480 at 30 fps unless `--size` and `--fps` say
otherwise): two vcalld daemons, then two Chromiums doing the same.

Join time is from the join command to the first remote frame at the joiner's sink (daemon: its
stats renderer; Chromium: the first frame its <video> presents). Both are taken on the same
clock as the command (CLOCK_MONOTONIC, or the page's performance.now()). CPU and memory cover a
fixed window with both participants in the call; each row is one participant (one daemon
process, or one Chromium process tree), with what it sends (kbit/s, from its call
statistics or getStats) and receives. Chromium's camera track has the content hint "detail",
so that it keeps the picture's size as the daemons do. Run it with `make bench`, which puts
it in a private network namespace with only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil

from bench.picture import Picture
from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_pattern_clip, write_tone_wav
from tests.helpers import eventually, vcalld_process, write_daemon_config
from vcalld.config.models import RoomServerConfig
from vcalld.control.client import control_request
from vcalld.room.server import RoomServer

POLL_SECONDS = 0.01


@dataclass
class Row:
    participant: str
    join_ms: list[float] = field(default_factory=list)
    cpu_percent: float = 0.0
    pss_mib: float = 0.0
    sent_kbps: float = 0.0
    received: str = ""

    def cells(self) -> list[str]:
        if self.join_ms:
            median = statistics.median(self.join_ms)
            low, high = min(self.join_ms), max(self.join_ms)
            join = f"{median:.0f} ({low:.0f}-{high:.0f}, n={len(self.join_ms)})"
        else:
            join = "-"
        return [
            self.participant,
            join,
            f"{self.cpu_percent:.1f}",
            f"{self.pss_mib:.0f}",
            f"{self.sent_kbps:.0f}",
            self.received,
        ]


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


async def usage(pids: dict[str, int], seconds: float) -> dict[str, tuple[float, float]]:
    """CPU (% of one core) over `seconds` and PSS (MiB) at the end, per named process tree."""

    def cpu(pid: int) -> float:
        return sum(sum(p.cpu_times()[:4]) for p in process_tree(pid))

    before = {name: cpu(pid) for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    result = {}
    for name, pid in pids.items():
        pss = sum(p.memory_full_info().pss for p in process_tree(pid)) / 2**20
        result[name] = (100 * (cpu(pid) - before[name]) / elapsed, pss)
    return result


# Daemons ---------------------------------------------------------------------------------------


async def first_remote_video_at(socket: Path, peer: str) -> float | None:
    """The monotonic time the daemon's sink got its first video frame from `peer`, if yet."""
    _, state = await control_request(socket, "state")
    _, media = await control_request(socket, "media")
    for participant in state["participants"]:
        if participant["name"] == peer:
            seen: float | None = (
                media.get(participant["id"], {}).get("video", {}).get("first_frame_at")
            )
            return seen
    return None


async def daemon_join_ms(socket: Path, peer: str, within: float = 20) -> float:
    started = time.monotonic()
    status, reply = await control_request(socket, "join")
    if status != 200:
        raise RuntimeError(f"join failed: {reply}")
    first = await eventually(lambda: first_remote_video_at(socket, peer), within, POLL_SECONDS)
    await control_request(socket, "leave")
    return 1000 * (float(first) - started)


async def daemon_received(socket: Path) -> str:
    _, media = await control_request(socket, "media")
    video = next(iter(media.values()))["video"]
    return f"{video['width']}x{video['height']} @ {video['fps']:.1f} fps"


async def bench_daemons(
    server: RoomServer, work: Path, reps: int, window: float, picture: Picture
) -> list[Row]:
    video = picture.video_section()
    joiner_config, joiner = write_daemon_config(
        work, "daemon-a", server.port, "d", auto_join=False, extra=video
    )
    peer_config, peer = write_daemon_config(work, "daemon-b", server.port, "d", extra=video)
    async with vcalld_process(joiner_config) as a, vcalld_process(peer_config) as b:
        await eventually(lambda: asyncio.to_thread(joiner.exists), 10, POLL_SECONDS)
        await eventually(lambda: asyncio.to_thread(peer.exists), 10, POLL_SECONDS)
        rows = [Row("vcalld daemon (joiner)"), Row("vcalld daemon (in room)")]
        for _ in range(reps):
            rows[0].join_ms.append(await daemon_join_ms(joiner, "daemon-b"))
        await control_request(joiner, "join")
        await eventually(lambda: first_remote_video_at(peer, "daemon-a"), 20, POLL_SECONDS)
        await asyncio.sleep(3)  # past the first keyframes and bitrate ramp
        for socket in (joiner, peer):
            await control_request(socket, "stats")  # rates are between this sample and the next
        measured = await usage({"a": a.pid, "b": b.pid}, window)
        for row, key, socket in ((rows[0], "a", joiner), (rows[1], "b", peer)):
            _, stats = await control_request(socket, "stats")
            row.sent_kbps = sum(p["send_kbps"] or 0 for p in stats["participants"])
            row.cpu_percent, row.pss_mib = measured[key]
            row.received = await daemon_received(socket)
        return rows


# Chromium --------------------------------------------------------------------------------------

# Resolves with the ms from calling the client's join() to the first frame the page presents
# from the other participant (requestVideoFrameCallback), on the page's own clock.
CHROMIUM_JOIN = """
(async () => {
  const started = performance.now();
  await join(%(room)r, %(name)r);
  const video = await new Promise((resolve) => {
    const look = () => {
      const tile = document.querySelector("#tiles figure.tile:not(.self) video");
      tile ? resolve(tile) : setTimeout(look, 5);
    };
    look();
  });
  const presented = await new Promise((resolve) =>
    video.requestVideoFrameCallback(() => resolve(performance.now())));
  leave();
  return presented - started;
})()
"""

# Bytes sent so far (every peer, audio and video), when (in seconds), and each peer's video
# as sent: its size and what limits it.
CHROMIUM_SENT = """
(async () => {
  let bytes = 0;
  const pictures = [];
  for (const entry of Object.values(await vcall.stats())) {
    for (const sent of Object.values(entry.outbound)) bytes += sent.bytesSent || 0;
    const video = entry.outbound.video;
    if (video && video.frameWidth) {
      pictures.push(`${video.frameWidth}x${video.frameHeight} (${video.qualityLimitationReason})`);
    }
  }
  return { bytes, at: performance.now() / 1000, pictures };
})()
"""


def chromium_sent_kbps(before: dict[str, Any], after: dict[str, Any]) -> float:
    """What a page sent between two CHROMIUM_SENT readings."""
    sent_bytes, seconds = after["bytes"] - before["bytes"], after["at"] - before["at"]
    return float(8 * sent_bytes / seconds / 1000)


CHROMIUM_RECEIVED = """
(async () => {
  const entry = Object.values(await vcall.stats())[0];
  const video = entry.inbound.video;
  return `${video.frameWidth}x${video.frameHeight} @ ${video.framesPerSecond} fps`;
})()
"""


@asynccontextmanager
async def chromium(
    server: RoomServer, work: Path, name: str, autojoin: bool, picture: Picture
) -> AsyncIterator[Page]:
    clip = work / "pattern.y4m"
    if not clip.exists():
        write_pattern_clip(clip, picture.width, picture.height, picture.fps, frames=picture.fps)
        write_tone_wav(work / "tone.wav", 660.0, seconds=2)
    query = urlencode({"room": "c", "name": name, "autojoin": "1" if autojoin else "0"})
    url = f"http://127.0.0.1:{server.port}/?{query}"
    async with chromium_page(url, video_clip=clip, audio_wav=work / "tone.wav") as page:
        await eventually(lambda: page.evaluate("typeof join === 'function'"), 20, POLL_SECONDS)
        yield page


async def bench_chromium(
    server: RoomServer, work: Path, reps: int, window: float, picture: Picture
) -> list[Row]:
    async with AsyncExitStack() as stack:
        joiner = await stack.enter_async_context(
            chromium(server, work, "chromium-a", False, picture)
        )
        peer = await stack.enter_async_context(chromium(server, work, "chromium-b", True, picture))
        rows = [Row("Chromium (joiner)"), Row("Chromium (in room)")]
        script = CHROMIUM_JOIN % {"room": "c", "name": "chromium-a"}
        for _ in range(reps):
            rows[0].join_ms.append(float(await joiner.evaluate(script)))
            await asyncio.sleep(0.5)
        await joiner.evaluate("join('c', 'chromium-a')")
        for page in (joiner, peer):
            # Keep the picture's size, as the daemons do, instead of sending a smaller one.
            await page.evaluate("vcall.localStream.getVideoTracks()[0].contentHint = 'detail'")
        await asyncio.sleep(5)
        before = [await page.evaluate(CHROMIUM_SENT) for page in (joiner, peer)]
        measured = await usage({"a": joiner.browser_pid, "b": peer.browser_pid}, window)
        pages = ((rows[0], "a", joiner), (rows[1], "b", peer))
        for (row, key, page), sent_before in zip(pages, before, strict=True):
            row.cpu_percent, row.pss_mib = measured[key]
            row.sent_kbps = chromium_sent_kbps(sent_before, await page.evaluate(CHROMIUM_SENT))
            row.received = str(await page.evaluate(CHROMIUM_RECEIVED))
        return rows


def table(rows: list[Row], window: float) -> str:
    header = [
        "participant",
        "join -> first remote frame, ms median (min-max)",
        f"CPU % of one core ({window:.0f} s)",
        "PSS MiB",
        "sends kbit/s",
        "receives",
    ]
    return markdown_table(header, [row.cells() for row in rows])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="joins measured per participant")
    parser.add_argument("--window", type=float, default=20.0, help="CPU window in seconds")
    parser.add_argument("--size", default="640x480", help="WxH of both participants' video")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    picture = Picture.parse(args.size, args.fps)
    server = RoomServer(RoomServerConfig(port=0, anonymous=True))
    await server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="vcalld-bench-") as folder:
            work = Path(folder)
            rows = await bench_daemons(server, work, args.reps, args.window, picture)
            rows += await bench_chromium(server, work, args.reps, args.window, picture)
    finally:
        await server.stop()
    print(f"{picture}, VP8 + Opus, two participants, loopback, {psutil.cpu_count()} CPUs")
    print(table(rows, args.window))
    print(
        f"reproduce: make bench BENCH_ARGS='--reps {args.reps} --window {args.window:g} "
        f"--size {args.size} --fps {args.fps}'"
    )


if __name__ == "__main__":
    asyncio.run(main())
