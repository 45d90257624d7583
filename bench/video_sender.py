"""A vcalld daemon whose video is H.264 encoded beforehand, sent as it is (the passthrough
path, as a camera's own H.264 takes it), run as a process of its own for bench/video_send.py
to measure:

    python -m bench.video_sender --config kiosk.toml --width 1920 --height 1080 --fps 60

The stream (the stamped pattern, an IDR every second) is encoded before the call starts;
the daemon then only packetises and sends it. Runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from tests.h264_stream import H264LoopSource, encode_pattern
from tests.helpers import running
from vcalld.config import load_config


async def main(arguments: argparse.Namespace) -> None:
    config = load_config(Path(arguments.config))
    size = (arguments.width, arguments.height, arguments.fps)
    packets = encode_pattern(*size, seconds=2, bitrate=1000 * arguments.kbps)
    async with running(config, video_source=H264LoopSource(packets, arguments.fps)):
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--kbps", type=int, default=5000, help="the stream's bitrate")
    asyncio.run(main(parser.parse_args()))
