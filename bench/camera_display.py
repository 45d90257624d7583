"""Camera capture with MJPEG decoding, and the kiosk screen's 7-tile composite: CPU per frame.

1. Capture: the daemon's camera source (capture thread, PyAV's MJPEG decoder, conversion to
   yuv420p, the one-frame handoff to the event loop) reading JPEG buffers of the stamped test
   pattern with sensor-like noise, served at the camera's rate by a replaying camera behind
   the same interface as the V4L2 one, at 1280x720 at 30 fps and 1920x1080 at 60 fps. The
   peer in the same run is FFmpeg's command line decoding the same JPEG stream to yuv420p.
2. Composite: the display renderer on SDL2's offscreen driver (software renderer, as on a
   board without a GPU) showing 7 participants who each send 640x360 at 30 fps, on a
   1920x1080 screen. The peer is FFmpeg's xstack filter building the same screen in RGB.

CPU is the process's own (all its threads; for the screen, with its screen process) over the
run, per frame captured or screen shown.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
from av import VideoFrame

from bench.table import markdown_table
from vcalld.config import VcalldConfig, VideoConfig
from vcalld.media.camera.device import CameraControl, CameraInfo, CameraMode, RawFrame
from vcalld.media.display.layout import grid, letterbox
from vcalld.media.pattern import PatternPainter
from vcalld.media.sinks.display import DisplayRenderer
from vcalld.media.sources.camera import CameraSource
from vcalld.state import CallState, DeviceState, Participant

CLIP_FRAMES = 60
NOISE = 8  # luma steps of sensor noise: JPEGs near a webcam's (90 KiB at 720p, 200 at 1080p)
TILES = 7
TILE_SIZE = (640, 360)
SCREEN = (1920, 1080)
RENDERERS = {
    "software": "software renderer (no GPU)",
    "opengl": "OpenGL renderer on Mesa's llvmpipe (a GPU emulated on the CPU)",
}


def clip(width: int, height: int, seed: int = 0) -> list[VideoFrame]:
    painter = PatternPainter(width, height)
    noise = np.random.default_rng(seed)
    frames = []
    for index in range(CLIP_FRAMES):
        planes = painter.paint(index).astype(np.int16)
        planes += noise.integers(-NOISE, NOISE + 1, planes.shape, dtype=np.int16)
        frames.append(VideoFrame.from_ndarray(np.clip(planes, 0, 255).astype(np.uint8), "yuv420p"))
    return frames


def jpegs(frames: list[VideoFrame]) -> list[bytes]:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frames[0].width, frames[0].height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"qmin": "5", "qmax": "5"}  # a fixed quality, as a camera's is
    return [
        b"".join(bytes(p) for p in encoder.encode(frame.reformat(format="yuvj420p")))
        for frame in frames
    ]


class ReplayCamera:
    """Serves recorded JPEG buffers at the mode's rate, like a camera's driver."""

    def __init__(self, buffers: list[bytes], mode: CameraMode) -> None:
        self.info = CameraInfo("/dev/video0", "replay", "bench", "bench")
        self._buffers = buffers
        self._mode = mode
        self._started = 0.0
        self._index = 0

    def modes(self) -> list[CameraMode]:
        return [self._mode]

    def start(self, mode: CameraMode) -> CameraMode:
        self._started = time.monotonic()
        return mode

    def read(self, timeout: float) -> RawFrame | None:
        wait = self._started + self._index / self._mode.fps - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return None
        time.sleep(max(0.0, wait))
        data = self._buffers[self._index % len(self._buffers)]
        self._index += 1
        return RawFrame(data, "MJPG", self._mode.width, self._mode.height, 0)

    def controls(self) -> list[CameraControl]:
        return []

    def set_control(self, name: str, value: object) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ReplaySystem:
    def __init__(self, camera: ReplayCamera) -> None:
        self._camera = camera

    def cameras(self) -> list[CameraInfo]:
        return [self._camera.info]

    def open(self, camera: CameraInfo) -> ReplayCamera:
        return self._camera


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(process: psutil.Process) -> float:
    """Of the screen process, which draws what the daemon sends it."""
    times = process.cpu_times()
    return float(times.user + times.system)


WARM_UP_SECONDS = 1.0  # decoder and textures made, caches filled


async def capture(buffers: list[bytes], mode: CameraMode, seconds: float) -> list[str]:
    source = CameraSource(
        VideoConfig(source="camera", width=mode.width, height=mode.height, fps=int(mode.fps)),
        ReplaySystem(ReplayCamera(buffers, mode)),
    )
    frames = 0

    def publish(frame: object) -> None:
        nonlocal frames
        frames += 1

    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(source.run(publish, lambda problem: None))
        await asyncio.sleep(WARM_UP_SECONDS)
        frames_before, begin, started = frames, cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        used, elapsed = cpu_seconds() - begin, time.monotonic() - started
        captured = frames - frames_before
        running.cancel()
    return [
        f"{mode.width}x{mode.height} at {mode.fps:g}",
        "vcalld camera source",
        f"{captured / elapsed:.1f}",
        f"{used / elapsed * 100:.0f} %",
        f"{used / captured * 1000:.2f}",
    ]


def ffmpeg_cpu(arguments: list[str]) -> float:
    """CPU seconds of one ffmpeg run, from the children's rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *arguments], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ffmpeg_decode(clip_file: Path, frames: int, mode: CameraMode) -> list[str]:
    used = ffmpeg_cpu(
        ["-f", "mjpeg", "-framerate", f"{mode.fps:g}", "-i", str(clip_file), "-pix_fmt", "yuv420p",
         "-f", "null", "-"]
    )  # fmt: skip
    return [
        f"{mode.width}x{mode.height} at {mode.fps:g}",
        "ffmpeg -f mjpeg, to yuv420p (peer)",
        "(as fast as it can)",
        "-",
        f"{used / frames * 1000:.2f}",
    ]


async def composite(seconds: float, render_driver: str) -> list[str]:
    """`render_driver`: SDL's renderer, by its SDL_RENDER_DRIVER name."""
    os.environ["SDL_RENDER_DRIVER"] = render_driver
    display = {
        "renderer": "display",
        "driver": "offscreen",
        "width": SCREEN[0],
        "height": SCREEN[1],
    }
    renderer = DisplayRenderer(VcalldConfig.model_validate({"display": display}))
    people = [
        Participant(id=f"p{index}", name=f"Person {index}", connection="connected")
        for index in range(TILES)
    ]
    renderer.show_state(DeviceState(device_id="kiosk", call=CallState.IN_CALL, participants=people))
    clips = [clip(*TILE_SIZE, seed=index)[:30] for index in range(TILES)]

    async def feed() -> None:
        """Each participant's frames as the call's decoders would hand them over, at 30 fps."""
        started = time.monotonic()
        for index in itertools.count():
            for person, frames in enumerate(clips):
                renderer.take_frame(f"p{person}", frames[index % len(frames)])
            await asyncio.sleep(max(0.0, started + (index + 1) / 30 - time.monotonic()))

    async with asyncio.TaskGroup() as tasks:
        showing = tasks.create_task(renderer.run(lambda problem: None))
        feeding = tasks.create_task(feed())
        await asyncio.sleep(WARM_UP_SECONDS)
        assert renderer.screen_pid is not None, "the screen did not open"
        screen_process = psutil.Process(renderer.screen_pid)
        shown_before, started = renderer.screens_shown, time.monotonic()
        begin = cpu_seconds() + process_cpu_seconds(screen_process)
        await asyncio.sleep(seconds)
        used = cpu_seconds() + process_cpu_seconds(screen_process) - begin
        elapsed = time.monotonic() - started
        shown = renderer.screens_shown - shown_before
        showing.cancel()
        feeding.cancel()
    return [
        f"{TILES} tiles of {TILE_SIZE[0]}x{TILE_SIZE[1]} at 30, on {SCREEN[0]}x{SCREEN[1]}",
        f"vcalld display, SDL2 {RENDERERS[render_driver]}",
        f"{shown / elapsed:.1f}",
        f"{used / elapsed * 100:.0f} %",
        f"{used / shown * 1000:.2f}",
    ]


def ffmpeg_composite(tile_clip: Path, frames: int) -> list[str]:
    """The same screen from the same yuv420p tiles: each scaled to the size and place our
    layout gives it, stacked, and made RGB."""
    width, height = SCREEN
    boxes = [letterbox(*TILE_SIZE, tile) for tile in grid(TILES, width, height)]
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "x".join(map(str, TILE_SIZE))]
    inputs: list[str] = []
    for _ in range(TILES):
        inputs += [*raw, "-framerate", "30", "-i", str(tile_clip)]
    scaled = "".join(f"[{i}:v]scale={box.width}:{box.height}[t{i}];" for i, box in enumerate(boxes))
    places = "|".join(f"{box.x}_{box.y}" for box in boxes)
    stacked = "".join(f"[t{i}]" for i in range(TILES))
    graph = (
        f"{scaled}{stacked}xstack=inputs={TILES}:layout={places}:fill=black,"
        f"pad={width}:{height},format=rgb24"
    )
    used = ffmpeg_cpu([*inputs, "-filter_complex", graph, "-f", "null", "-"])
    return [
        f"{TILES} tiles of {TILE_SIZE[0]}x{TILE_SIZE[1]} at 30, on {width}x{height}",
        "ffmpeg scale + xstack to rgb24, same layout (peer)",
        "(as fast as it can)",
        "-",
        f"{used / frames * 1000:.2f}",
    ]


async def main(seconds: float) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for mode in (CameraMode("MJPG", 1280, 720, 30), CameraMode("MJPG", 1920, 1080, 60)):
            buffers = jpegs(clip(mode.width, mode.height))
            frames = int(mode.fps * seconds)
            clip_file = Path(scratch) / f"{mode.width}.mjpeg"
            clip_file.write_bytes(b"".join(buffers[i % len(buffers)] for i in range(frames)))
            rows.append(await capture(buffers, mode, seconds))
            rows.append(ffmpeg_decode(clip_file, frames, mode))
            size = sum(map(len, buffers)) / len(buffers) / 1024
            rows[-2][1] += f", {size:.0f} KiB JPEGs"
        tile_clip = Path(scratch) / "tile.yuv"
        tiles = [frame.to_ndarray().tobytes() for frame in clip(*TILE_SIZE)]
        screens = int(30 * seconds)
        tile_clip.write_bytes(b"".join(tiles[i % len(tiles)] for i in range(screens)))
        for render_driver in RENDERERS:
            rows.append(await composite(seconds, render_driver))
        rows.append(ffmpeg_composite(tile_clip, screens))
    print(f"Camera capture and the screen, {os.cpu_count()} cores, {seconds:g} s each")
    print(markdown_table(["job", "who", "fps", "CPU (of a core)", "CPU ms per frame"], rows))
    print()
    print(f"Reproduce: make bench-video BENCH_ARGS='--seconds {seconds:g}'")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().seconds))
