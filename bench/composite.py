"""The composite recording's CPU per screen: vcalld's compositor drawing into memory
(`FrameCanvas`: swscale per picture, numpy for fills and text) and libx264 ultrafast, against
FFmpeg doing the same layout with `scale` and `xstack` in one filter graph (libavfilter
through PyAV) and the same encoder, for 2, 4 and 7 remote participants at 1280x720.

Every participant sends a new 640x480 picture for every screen (the worst case: each is
scaled again); CPU is the process's (`time.process_time`) per screen, and a core's share at
15 screens a second, the recorder's default.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av

from bench.table import markdown_table
from vcalld.media.display.compositor import compose
from vcalld.media.display.frame_canvas import FrameCanvas
from vcalld.media.display.layout import grid, letterbox
from vcalld.media.display.tiles import Tiles
from vcalld.media.pattern import PatternPainter

WIDTH, HEIGHT, FPS = 1280, 720, 15
PICTURE = (640, 480)

Screen = Callable[[list[av.VideoFrame]], av.VideoFrame]


def pictures(count: int) -> list[av.VideoFrame]:
    painter = PatternPainter(*PICTURE)
    return [av.VideoFrame.from_ndarray(painter.paint(i), format="yuv420p") for i in range(count)]


def vcalld_screen(people: int) -> Screen:
    tiles, canvas = Tiles(), FrameCanvas(WIDTH, HEIGHT)
    tiles.participants([(f"p{i}", f"Participant {i}", "connected") for i in range(people)])

    def draw(latest: list[av.VideoFrame]) -> av.VideoFrame:
        for index, picture in enumerate(latest):
            tiles.video(f"p{index}", picture)
        compose(canvas, tiles.views()[0], None, "")
        return canvas.frame().reformat(format="yuv420p")

    return draw


def ffmpeg_screen(people: int) -> Screen:
    """Each picture scaled to its letterboxed tile, the tiles stacked where the layout puts
    them, gaps black."""
    graph = av.filter.Graph()
    stack = graph.add(
        "xstack",
        f"inputs={people}:fill=black:layout="
        + "|".join(f"{r.x}_{r.y}" for r in _pictures_in_tiles(people)),
    )
    sources = []
    for index, shown in enumerate(_pictures_in_tiles(people)):
        source = graph.add_buffer(
            width=PICTURE[0],
            height=PICTURE[1],
            format=av.VideoFormat("yuv420p"),
            time_base=Fraction(1, FPS),
        )
        scale = graph.add("scale", f"{shown.width}:{shown.height}")
        source.link_to(scale)
        scale.link_to(stack, 0, index)
        sources.append(source)
    pad = graph.add("pad", f"{WIDTH}:{HEIGHT}")  # the grid's edge gaps, as our canvas has
    stack.link_to(pad)
    pad.link_to(graph.add("buffersink"))
    graph.configure()

    def draw(latest: list[av.VideoFrame]) -> av.VideoFrame:
        for source, picture in zip(sources, latest, strict=True):
            source.push(picture)
        frame: av.VideoFrame = graph.vpull()
        return frame

    return draw


def _pictures_in_tiles(people: int) -> list[Any]:
    return [letterbox(*PICTURE, tile) for tile in grid(people, WIDTH, HEIGHT)]


def cpu_per_screen(screen: Screen, frames: list[av.VideoFrame], people: int) -> float:
    """Milliseconds of process CPU per screen drawn and encoded, after a warm-up."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base, encoder.options = Fraction(1, FPS), {"preset": "ultrafast"}
    warm = len(frames) // 10
    start = 0.0
    for index in range(len(frames)):
        if index == warm:
            start = time.process_time()
        latest = [frames[(index + offset) % len(frames)] for offset in range(people)]
        drawn = screen(latest)
        drawn.pts, drawn.time_base = index, Fraction(1, FPS)
        encoder.encode(drawn)
    return 1000 * (time.process_time() - start) / (len(frames) - warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="of screens per measurement")
    args = parser.parse_args()
    frames = pictures(round(args.seconds * FPS))
    rows = []
    for people in (2, 4, 7):
        ours = cpu_per_screen(vcalld_screen(people), frames, people)
        theirs = cpu_per_screen(ffmpeg_screen(people), frames, people)
        rows.append(
            [
                str(people),
                f"{ours:.1f}",
                f"{100 * ours * FPS / 1000:.0f}",
                f"{theirs:.1f}",
                f"{100 * theirs * FPS / 1000:.0f}",
            ]
        )
    print(
        markdown_table(
            [
                "participants (1280x720, 15 fps)",
                "vcalld ms/screen",
                "vcalld % of a core",
                "FFmpeg xstack ms/screen",
                "FFmpeg % of a core",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
