"""A long call with commands every so often: does anything grow that should not?

Two daemons in one process (`kiosk` and `watcher`) call each other through the room server on
loopback, with test pattern and tone. Every `--command-seconds` the kiosk is sent a round of
commands: mute and unmute, get-state (not voice-only and back, which restarts the pattern's
frame counter that the video lag is read from). Every `--sample-seconds` the process's memory,
threads, file descriptors and asyncio tasks are sampled with how late the watcher sees the
kiosk's video and hears its audio:

- video lag: the test pattern's frame counter runs on the wall clock, so how far the counter
  the watcher last decoded trails the clock (less a constant: the first sample's) is how much
  later video arrives than it did at the start;
- audio: the watcher's playout delay for the kiosk, from its call statistics.

The table compares each sample with the end of the warm-up (the first `--warmup-minutes`).
The run is bounded by `--minutes` and stops by itself. `make bench-soak` runs an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.table import markdown_table
from tests.helpers import eventually, loopback_config, received, running
from vcalld.commands import GetStateCommand, SetMuteCommand
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.room.server import RoomServer

FPS = 15
STAMP_MODULUS = 1 << 16  # the pattern's counter is 16 bits
VIDEO = {"width": 320, "height": 240, "fps": FPS}


@dataclass
class Sample:
    minute: float
    rss_mb: float
    threads: int
    fds: int
    tasks: int
    video_lag_ms: float
    audio_delay_ms: float | None


class VideoLag:
    """The watcher's last decoded frame counter against the wall clock, unwrapped."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._turns = 0
        self._origin: float | None = None

    def now_ms(self, stamp: int) -> float:
        if self._last is not None and stamp < self._last - STAMP_MODULUS // 2:
            self._turns += 1
        self._last = stamp
        behind = time.monotonic() * FPS - (stamp + self._turns * STAMP_MODULUS)
        if self._origin is None:
            self._origin = behind
        return 1000 * (behind - self._origin) / FPS


async def command_round(kiosk: Daemon) -> None:
    for command in (
        SetMuteCommand(audio=True, video=True),
        SetMuteCommand(audio=False, video=False),
        GetStateCommand(),
    ):
        result = await kiosk.execute(command)
        if not result.ok:
            raise RuntimeError(f"{command.command} failed: {result}")
        await asyncio.sleep(1.0)


async def sample(started: float, watcher: Daemon, lag: VideoLag, process: psutil.Process) -> Sample:
    stats: dict[str, Any] = await watcher.call_stats()
    delays = [
        peer["audio_playout_delay_ms"] for peer in stats["participants"] if peer["name"] == "kiosk"
    ]
    return Sample(
        minute=(time.monotonic() - started) / 60,
        rss_mb=process.memory_info().rss / 2**20,
        threads=process.num_threads(),
        fds=process.num_fds(),
        tasks=len(asyncio.all_tasks()),
        video_lag_ms=lag.now_ms(received(watcher, "kiosk")["video"]["last_stamp"]),
        audio_delay_ms=next((d for d in delays if d is not None), None),
    )


async def soak(minutes: float, sample_seconds: float, command_seconds: float) -> list[Sample]:
    process = psutil.Process(os.getpid())
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="vcalld-soak-") as scratch:
        server = RoomServer(RoomServerConfig(port=0, anonymous=True))
        await server.start()
        try:
            async with AsyncExitStack() as stack:
                kiosk = await stack.enter_async_context(
                    running(
                        loopback_config("kiosk", Path(scratch), server.port, "soak", video=VIDEO)
                    )
                )
                watcher = await stack.enter_async_context(
                    running(
                        loopback_config("watcher", Path(scratch), server.port, "soak", video=VIDEO)
                    )
                )
                await eventually(lambda: received(watcher, "kiosk").get("video"), 30)
                started = time.monotonic()
                lag = VideoLag()
                next_command = started + command_seconds
                while time.monotonic() - started < minutes * 60:
                    samples.append(await sample(started, watcher, lag, process))
                    print(samples[-1], flush=True)
                    # On a fixed grid: a period counted from each sample's end would walk the
                    # sampling instant through the frame interval (the time a sample takes
                    # each minute), which reads as a lag that climbs and falls by a frame.
                    deadline = started + len(samples) * sample_seconds
                    while time.monotonic() < deadline:
                        if time.monotonic() >= next_command:
                            await command_round(kiosk)
                            next_command += command_seconds
                        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            await server.stop()
    return samples


def report(samples: list[Sample], warmup_minutes: float) -> str:
    warm = [s for s in samples if s.minute >= warmup_minutes] or samples
    base, end = warm[0], warm[-1]
    rows = [
        [
            f"{s.minute:.0f}",
            f"{s.rss_mb:.1f}",
            str(s.threads),
            str(s.fds),
            str(s.tasks),
            f"{s.video_lag_ms:.0f}",
            "-" if s.audio_delay_ms is None else f"{s.audio_delay_ms:.0f}",
        ]
        for s in samples
    ]
    table = markdown_table(
        ["minute", "RSS MB", "threads", "fds", "tasks", "video lag ms", "audio delay ms"], rows
    )
    delays = [s.audio_delay_ms for s in warm if s.audio_delay_ms is not None]
    growth = 100 * (end.rss_mb - base.rss_mb) / base.rss_mb
    lines = [
        table,
        "",
        f"after the {warmup_minutes:g}-minute warm-up, minute {base.minute:.0f} to "
        f"{end.minute:.0f}: RSS {base.rss_mb:.1f} -> {end.rss_mb:.1f} MB ({growth:+.1f} %), "
        f"threads {base.threads} -> {end.threads}, fds {base.fds} -> {end.fds}, "
        f"tasks {base.tasks} -> {end.tasks}, video lag {base.video_lag_ms:.0f} -> "
        f"{end.video_lag_ms:.0f} ms, audio delay median "
        f"{statistics.median(delays) if delays else float('nan'):.0f} ms",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--command-seconds", type=float, default=30.0)
    args = parser.parse_args()
    samples = asyncio.run(soak(args.minutes, args.sample_seconds, args.command_seconds))
    print(report(samples, args.warmup_minutes))


if __name__ == "__main__":
    main()
