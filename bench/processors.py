"""The built-in frame processors: CPU per frame at 720p30 and 48 kHz, against FFmpeg's nearest
filters run in the same process on the same frames (libavfilter through PyAV):

- voice-changer (+4 semitones) vs `asetrate,aresample,atempo`, FFmpeg's pitch shift recipe;
- beauty vs `bilateral` (edge-preserving smoothing, sigmaS 3, sigmaR 0.05);
- overlay (text, clock and logo) vs `overlay` of the same logo (PyAV's FFmpeg has no
  drawtext, so its text costs nothing here).

CPU is the process's over the run (`time.process_time`), per frame; a core's share is at the
frame rate (30 fps, or 50 audio frames of 20 ms a second).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.frame import Frame

from bench.table import markdown_table
from vcalld.media.pattern import PatternPainter
from vcalld.media.processors.base import make_processor

WIDTH, HEIGHT, FPS = 1280, 720, 30
RATE, AUDIO_FPS = 48000, 50
SEMITONES = 4

Processing = Callable[[Frame], Any]


def video_frames(count: int) -> Iterator[av.VideoFrame]:
    painter = PatternPainter(WIDTH, HEIGHT)
    rng = np.random.default_rng(1)
    for index in range(count):
        planes = painter.paint(index)
        noisy = np.clip(planes + rng.normal(0, 4, planes.shape), 0, 255).astype(np.uint8)
        made = av.VideoFrame.from_ndarray(noisy, format="yuv420p")
        made.pts, made.time_base = index, Fraction(1, FPS)
        yield made


def audio_frames(count: int) -> Iterator[av.AudioFrame]:
    samples = RATE // AUDIO_FPS
    for index in range(count):
        t = (np.arange(samples) + index * samples) / RATE
        wave = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, index * samples, Fraction(1, RATE)
        yield frame


def filter_graph(template: Frame, chain: list[tuple[str, str]], logo: Path | None = None) -> Any:
    graph = av.filter.Graph()
    if isinstance(template, av.AudioFrame):
        source = graph.add_abuffer(
            format="s16", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE)
        )
    else:
        source = graph.add_buffer(
            width=WIDTH,
            height=HEIGHT,
            format=av.VideoFormat("yuv420p"),
            time_base=Fraction(1, FPS),
        )
    last = source
    for name, arguments in chain:
        node = graph.add(name, arguments)
        last.link_to(node)
        last = node
    if logo is not None:
        movie = graph.add("movie", str(logo))
        movie.link_to(last, 0, 1)
    last.link_to(graph.add("abuffersink" if isinstance(template, av.AudioFrame) else "buffersink"))
    graph.configure()
    return graph


def through_graph(graph: Any) -> Callable[[Frame], None]:
    def run(frame: Frame) -> None:
        graph.push(frame)
        while True:
            try:
                graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return

    return run


def cpu_per_frame(frames: list[Frame], process: Callable[[Frame], Any]) -> float:
    """Milliseconds of process CPU per frame, after a warm-up of a tenth of them."""
    warm = len(frames) // 10
    for frame in frames[:warm]:
        process(frame)
    start = time.process_time()
    for frame in frames[warm:]:
        process(frame)
    return 1000 * (time.process_time() - start) / (len(frames) - warm)


def write_logo(path: Path) -> Path:
    logo = np.zeros((120, 240, 4), np.uint8)
    logo[..., 0], logo[..., 2], logo[..., 3] = 200, 60, 220
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 240, 120, "rgba"
        for packet in stream.encode(av.VideoFrame.from_ndarray(logo, format="rgba")):
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="of media per measurement")
    args = parser.parse_args()
    video: list[Frame] = list(video_frames(round(args.seconds * FPS)))
    audio: list[Frame] = list(audio_frames(round(args.seconds * AUDIO_FPS)))
    factor = 2 ** (SEMITONES / 12)
    with tempfile.TemporaryDirectory() as folder:
        logo = write_logo(Path(folder) / "logo.png")
        cases: list[tuple[str, list[Frame], int, Processing, Processing]] = [
            (
                "voice-changer",
                audio,
                AUDIO_FPS,
                make_processor("voice-changer", {"semitones": SEMITONES}).process,
                through_graph(
                    filter_graph(
                        audio[0],
                        [
                            ("asetrate", str(round(RATE * factor))),
                            ("aresample", str(RATE)),
                            ("atempo", f"{1 / factor:.6f}"),
                        ],
                    )
                ),
            ),
            (
                "beauty",
                video,
                FPS,
                make_processor("beauty", {"skin_only": False}).process,
                through_graph(filter_graph(video[0], [("bilateral", "sigmaS=3:sigmaR=0.05")])),
            ),
            (
                "overlay",
                video,
                FPS,
                make_processor(
                    "overlay", {"text": "Reception", "clock": True, "logo": str(logo)}
                ).process,
                through_graph(filter_graph(video[0], [("overlay", "W-w-20:20")], logo)),
            ),
        ]
        rows = []
        for name, frames, rate, ours, theirs in cases:
            mine, peer = cpu_per_frame(frames, ours), cpu_per_frame(frames, theirs)
            rows.append(
                [
                    name,
                    "720p30" if rate == FPS else "48 kHz mono",
                    f"{mine:.2f}",
                    f"{100 * mine * rate / 1000:.1f}",
                    f"{peer:.2f}",
                    f"{100 * peer * rate / 1000:.1f}",
                ]
            )
    print(
        markdown_table(
            [
                "processor",
                "media",
                "vcalld ms/frame",
                "vcalld % of a core",
                "FFmpeg filter ms/frame",
                "FFmpeg % of a core",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
