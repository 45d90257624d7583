"""The `file` video source: a file (up to 4K), an http stream or an RTSP server's stream of
the stamped test pattern, recognised by the far end at the configured size, looped, and a
missing one reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from fractions import Fraction
from pathlib import Path

import av
from aiohttp import web

from tests.helpers import eventually, received, running, serving, video_ok
from tests.mqtt import free_port
from tests.test_config import problems, write
from vcalld.config import VcalldConfig
from vcalld.media.pattern import PatternPainter
from vcalld.room.server import RoomServer

RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def write_pattern_clip(  # noqa: PLR0917 - a test helper, its calls read as a sentence
    path: Path, width: int, height: int, fps: int, seconds: float, codec: str = "mpeg4"
) -> Path:
    painter = PatternPainter(width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 8_000_000
        for index in range(round(fps * seconds)):
            frame = av.VideoFrame.from_ndarray(painter.paint(index), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


async def test_a_4k_file_reaches_the_far_end_at_3840x2160(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    clip = write_pattern_clip(tmp_path / "uhd.mkv", 3840, 2160, 5, 2.0)
    video = {"source": "file", "uri": str(clip), "width": 3840, "height": 2160, "fps": 5}
    sending = daemon_config(room_server, "dev-a", video=video, audio={"enabled": False})
    async with running(sending), running(daemon_config(room_server, "dev-b")) as b:
        await eventually(lambda: video_ok(received(b, "dev-a"), (3840, 2160), min_fps=1), 60)
        seen = received(b, "dev-a")["video"]
    assert (seen["width"], seen["height"]) == (3840, 2160)
    assert seen["pattern_frames"] >= 0.9 * seen["stamped_frames"] > 0, seen


async def test_an_http_stream_plays_looped_at_the_configured_size(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    clip = write_pattern_clip(tmp_path / "clip.mkv", 1280, 720, 25, 1.0).read_bytes()

    async def serve_clip(request: web.Request) -> web.Response:
        return web.Response(body=clip, content_type="video/x-matroska")

    app = web.Application()
    app.router.add_get("/clip.mkv", serve_clip)
    async with serving(app) as url:
        video = {"source": "file", "uri": f"{url}/clip.mkv", "width": 640, "height": 360}
        sending = daemon_config(room_server, "dev-a", video=video)
        async with running(sending), running(daemon_config(room_server, "dev-b")) as b:
            await eventually(lambda: video_ok(received(b, "dev-a"), (640, 360), min_fps=20), 20)
            frames = received(b, "dev-a")["video"]["frames"]
            await eventually(lambda: received(b, "dev-a")["video"]["frames"] > frames + 50, 5)
            looped = received(b, "dev-a")["video"]
    # Two seconds of a one-second clip, still at its rate and still the pattern.
    assert looped["fps"] >= 20 and looped["pattern_frames"] > 50, looped


@asynccontextmanager
async def rtsp_server(clip: Path) -> AsyncIterator[str]:
    """gst-rtsp-server serving `clip` (WebM, VP8) on loopback; yields its URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", str(RTSP_SERVER), str(port), str(clip), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 20)
        assert ready.strip() == b"ready", f"the RTSP server did not start: {ready!r}"
        yield f"rtsp://127.0.0.1:{port}/clip"
    finally:
        process.kill()
        await process.wait()


async def test_an_rtsp_stream_plays_and_outlives_its_end(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    """A real RTSP server's stream (over TCP, as the source asks) reaches the far end as the
    pattern, scaled; the stream ends with the clip, and the source opens it again."""
    clip = write_pattern_clip(tmp_path / "clip.webm", 640, 480, 25, 1.0, codec="libvpx")
    async with rtsp_server(clip) as url:
        video = {"source": "file", "uri": url, "width": 320, "height": 240}
        sending = daemon_config(room_server, "dev-a", video=video)
        async with running(sending) as a, running(daemon_config(room_server, "dev-b")) as b:
            await eventually(lambda: video_ok(received(b, "dev-a"), (320, 240), min_fps=10), 30)
            patterns = received(b, "dev-a")["video"]["pattern_frames"]
            # Three times the clip's length: it was played to its end and opened again.
            await eventually(
                lambda: received(b, "dev-a")["video"]["pattern_frames"] > patterns + 75, 20
            )
            assert a.state.current.video_source_problem is None


async def test_a_missing_file_sends_black_and_says_why(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    video = {"source": "file", "uri": str(tmp_path / "gone.mkv"), "width": 320, "height": 240}
    sending = daemon_config(room_server, "dev-a", video=video)
    async with running(sending) as a, running(daemon_config(room_server, "dev-b")) as b:
        await eventually(lambda: received(b, "dev-a").get("video", {}).get("frames", 0) > 10, 20)
        seen = received(b, "dev-a")["video"]
        problem = a.state.current.video_source_problem
    assert (seen["width"], seen["height"]) == (320, 240) and seen["luma"] < 20, seen
    assert problem is not None and problem.startswith("video file unavailable: "), problem


def test_the_file_source_needs_a_uri(tmp_path: Path) -> None:
    path = write(tmp_path, '[video]\nsource = "file"\n')
    (found,) = problems(path)
    assert found.startswith(f"{path}:1: video: the file source needs `uri`"), found
