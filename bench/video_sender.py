"""A vcalld daemon whose video is H.264 encoded beforehand, sent as it is (the passthrough
path, as a camera's own H.264 takes it), run as a process of its own for bench/video_send.py
to measure:

    python -m bench.video_sender --config kiosk.toml

The stream (the stamped pattern at the config's `[video]` size and rate, an IDR every
second) is encoded before the call starts; the daemon then only packetises and sends it.
Runs until killed.
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
    video = config.video
    size = (video.width, video.height, video.fps)
    packets = encode_pattern(*size, seconds=2, bitrate=1000 * arguments.kbps)
    async with running(config, video_source=H264LoopSource(packets, video.fps)):
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--kbps", type=int, default=5000, help="the stream's bitrate")
    asyncio.run(main(parser.parse_args()))
