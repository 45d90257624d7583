"""Video under random packet loss: what a receiver shows of one sender's stream, and when.

The sender is a daemon sending the stamped test pattern (640x480 at 30 fps unless `--size`
and `--fps` say otherwise; VP8) and noting
when it painted each stamp. Three receivers take the same stream in turn, each in a call of
its own: a daemon with vcalld's receive path, a daemon with aiortc 1.16's own (our hooks
left out for video), and headless Chromium. Loss is a fixed pseudo-random pattern on every
datagram the sender's connection to the receiver sends and receives (media, NACKs, PLIs,
retransmissions alike), after a few seconds of clean call.

Per receiver and loss rate: the frames shown per second; freezes by WebRTC's definition (a
gap between two frames shown longer than both three average frame intervals and the
average plus 150 ms), as seconds frozen and how many; pictures shown whose stamp fails its
check bits (corrupt); and the time from painting to showing (median and 95th percentile),
on one clock: the daemons' frames as their sink gets them, Chromium's at its
requestVideoFrameCallback, read from the stamp row of the <video>.

Run it with `make bench-video-loss`, in a private network namespace with only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from av import VideoFrame

from bench.picture import Picture
from bench.table import markdown_table
from tests.chromium import Page, chromium_page, write_tone_wav
from tests.helpers import eventually, running
from tests.lossy import Loss, impair
from vcalld.call import aiortc_hooks
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import STAMP_BITS, Geometry, PatternPainter, read_stamp, stamp_bits
from vcalld.media.sinks.stats import VideoStats
from vcalld.media.sources.base import Publish, ReportProblem
from vcalld.room.server import RoomServer

WARMUP_SECONDS = 4.0
RATES = (0.0, 0.1, 0.3, 0.5)
RECEIVERS = ("vcalld", "aiortc", "Chromium")
HEADER = [
    "receiver",
    "loss %",
    "fps shown",
    "frozen s (freezes)",
    "corrupt shown",
    "paint to shown ms (median / p95)",
]


class StampedPattern:
    """The test pattern, each stamp's paint time (wall clock) kept."""

    kind = "video"

    def __init__(self, picture: Picture) -> None:
        self._fps = picture.fps
        self._painter = PatternPainter(picture.width, picture.height)
        self.painted_at: dict[int, float] = {}

    async def run(self, publish: Publish, report: ReportProblem) -> None:
        loop = asyncio.get_running_loop()
        start, index = loop.time(), 0
        while True:
            frame = VideoFrame.from_ndarray(self._painter.paint(index), format="yuv420p")
            frame.pts, frame.time_base = index * 3000, Fraction(1, 90000)
            self.painted_at[index & 0xFFFF] = time.time()
            publish(frame)
            index += 1
            await asyncio.sleep(max(0.0, start + index / self._fps - loop.time()))


@dataclass
class Shown:
    """What one receiver showed: (wall-clock time, stamp or None) per picture."""

    pictures: list[tuple[float, int | None]]

    def result(self, receiver: str, loss: float, painted_at: dict[int, float]) -> list[str]:
        times = [at for at, _ in self.pictures]
        seconds = (times[-1] - times[0]) if len(times) > 1 else float("nan")
        frozen, freezes = freeze_time(times)
        delays = sorted(
            1000 * (at - painted_at[stamp])
            for at, stamp in self.pictures
            if stamp is not None and stamp in painted_at
        )
        corrupt = sum(stamp is None for _, stamp in self.pictures)
        latency = (
            f"{statistics.median(delays):.0f} / {delays[int(0.95 * (len(delays) - 1))]:.0f}"
            if delays
            else "-"
        )
        return [
            receiver,
            f"{100 * loss:.0f}",
            f"{(len(times) - 1) / seconds:.1f}" if len(times) > 1 else "0",
            f"{frozen:.1f} ({freezes})",
            str(corrupt),
            latency,
        ]


def freeze_time(times: list[float]) -> tuple[float, int]:
    """Seconds frozen and freezes: gaps over max(3 x mean interval, mean + 150 ms), the mean
    over the 30 intervals before (WebRTC's freeze statistics)."""
    recent: collections.deque[float] = collections.deque(maxlen=30)
    frozen, freezes = 0.0, 0
    for before, after in itertools.pairwise(times):
        gap = after - before
        if len(recent) == recent.maxlen:
            mean = sum(recent) / len(recent)
            if gap > max(3 * mean, mean + 0.15):
                frozen, freezes = frozen + gap, freezes + 1
        recent.append(gap)
    return frozen, freezes


@contextlib.contextmanager
def recording_shown_frames() -> Iterator[list[tuple[float, int | None]]]:
    """Every video picture a daemon's sink gets in this process, with its stamp."""
    pictures: list[tuple[float, int | None]] = []
    add = VideoStats.add

    def recorded(self: VideoStats, frame: VideoFrame) -> None:
        add(self, frame)
        pictures.append((time.time(), read_stamp(picture_plane(frame, 0))))

    VideoStats.add = recorded  # type: ignore[method-assign]
    try:
        yield pictures
    finally:
        VideoStats.add = add  # type: ignore[method-assign]


@contextlib.contextmanager
def aiortc_own_video_receiver() -> Iterator[None]:
    """Our hooks without their video receive path: aiortc's jitter buffer and NACKs stay."""
    attach = aiortc_hooks._attach_video_receiver

    def left_out(*args: Any) -> Callable[[], Coroutine[Any, Any, None]]:
        async def idle() -> None:  # in the receive path's loop's place
            await asyncio.Event().wait()

        return idle

    aiortc_hooks._attach_video_receiver = left_out  # type: ignore[assignment]
    try:
        yield
    finally:
        aiortc_hooks._attach_video_receiver = attach


def config(
    server: RoomServer, device: str, folder: Path, picture: Picture, **sections: Any
) -> VcalldConfig:
    return VcalldConfig.model_validate(
        {
            "device": {"id": device},
            "call": {"server_url": f"ws://127.0.0.1:{server.port}/ws", "room": "bench",
                     "ice_host_addresses": ["127.0.0.1"]},
            "video": {"width": picture.width, "height": picture.height, "fps": picture.fps},
            "control": {"socket": str(folder / f"{device}.sock")},
            **sections,
        }
    )  # fmt: skip


@contextlib.asynccontextmanager
async def room() -> AsyncIterator[RoomServer]:
    server = RoomServer(RoomServerConfig(port=0, anonymous=True))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def lossy_once_up(sender: Daemon, loss: float, seed: int) -> None:
    pc = await eventually(lambda: next(iter(sender._backend.peer_connections().values()), None), 20)
    await eventually(lambda: pc.connectionState == "connected", 20)
    await asyncio.sleep(WARMUP_SECONDS)
    impair(pc, Loss(loss, seed), outbound=True)


async def daemon_receives(
    loss: float, seconds: float, folder: Path, seed: int, *, picture: Picture, ours: bool
) -> tuple[Shown, dict[int, float]]:
    source = StampedPattern(picture)
    chosen = contextlib.nullcontext() if ours else aiortc_own_video_receiver()
    async with room() as server:
        with chosen, recording_shown_frames() as pictures:
            viewer = config(server, "viewer", folder, picture, video={"enabled": False})
            async with (
                running(config(server, "sender", folder, picture), video_source=source) as sender,
                running(viewer),
            ):
                await lossy_once_up(sender, loss, seed)
                pictures.clear()
                await asyncio.sleep(seconds)
                shown = Shown(list(pictures))
    return shown, source.painted_at


# Reads the 24 stamp cells of each picture the first remote <video> presents, at its
# requestVideoFrameCallback, as BT.601 luma over or under the middle.
STAMP_PROBE = """
window.stampProbe = {
  records: [],
  start(row, centers) {
    const video = document.querySelector("#tiles .tile:not(.self) video");
    if (!video || !video.videoWidth) return false;
    const canvas = new OffscreenCanvas(video.videoWidth, 1);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const step = (now) => {
      context.drawImage(video, 0, row, video.videoWidth, 1, 0, 0, video.videoWidth, 1);
      const pixels = context.getImageData(0, 0, video.videoWidth, 1).data;
      const bits = centers.map((x) => {
        const i = 4 * x;
        const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
        return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 > 125;
      });
      this.records.push([performance.timeOrigin + now, bits.map(Number).join("")]);
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
    return true;
  },
  take() { const taken = this.records; this.records = []; return taken; },
};
"""


def stamp_of(bits: str) -> int | None:
    word = int(bits, 2)
    counter = word >> 8
    return counter if stamp_bits(counter) == [bit == "1" for bit in bits] else None


async def chromium_receives(
    loss: float, seconds: float, folder: Path, seed: int, *, picture: Picture
) -> tuple[Shown, dict[int, float]]:
    source = StampedPattern(picture)
    geometry = Geometry(picture.width, picture.height)
    row = (geometry.stamp_top + geometry.digits_top) // 2
    centers = [sum(geometry.cell_span(bit)) // 2 for bit in range(STAMP_BITS)]
    wav = write_tone_wav(folder / "tone.wav", 660.0, seconds=2)
    async with room() as server:
        query = urlencode({"room": "bench", "name": "chromium", "autojoin": "1"})
        url = f"http://127.0.0.1:{server.port}/?{query}"
        async with (
            running(config(server, "sender", folder, picture), video_source=source) as sender,
            chromium_page(url, audio_wav=wav) as page,
        ):
            await lossy_once_up(sender, loss, seed)
            await page.evaluate(STAMP_PROBE)
            await eventually(lambda: started(page, row, centers), 20)
            await asyncio.sleep(seconds)
            records = await page.evaluate("stampProbe.take()")
    pictures = [(at / 1000, stamp_of(bits)) for at, bits in records]
    return Shown(pictures), source.painted_at


async def started(page: Page, row: int, centers: list[int]) -> bool:
    return bool(await page.evaluate(f"stampProbe.start({row}, {centers})"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="of loss per rate")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    parser.add_argument("--receivers", nargs="*", default=list(RECEIVERS), choices=RECEIVERS)
    parser.add_argument("--size", default="640x480", help="WxH of the sender's video")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    picture = Picture.parse(args.size, args.fps)
    rows = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for index, loss in enumerate(args.rates):
            for receiver in args.receivers:
                seed = 300 + index
                if receiver == "Chromium":
                    shown, painted = await chromium_receives(
                        loss, args.seconds, folder, seed, picture=picture
                    )
                else:
                    shown, painted = await daemon_receives(
                        loss, args.seconds, folder, seed, picture=picture, ours=receiver == "vcalld"
                    )
                rows.append(shown.result(receiver, loss, painted))
                print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(HEADER, rows))
    print(f"\n{picture}, {args.seconds:.0f} s of loss per rate and receiver:")
    rates = " ".join(f"{rate:g}" for rate in args.rates)
    arguments = f"--size {args.size} --fps {args.fps} --rates {rates} --seconds {args.seconds:g}"
    print(f"`make bench-video-loss BENCH_ARGS='{arguments}'`")


if __name__ == "__main__":
    asyncio.run(main())
