"""Encode once (`[video] encode_once`): six peers in a mesh get the sender's video from one
encoder, whose frame count does not grow with them, and every one of them sees the pattern;
a keyframe request from any peer reaches that encoder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import eventually, received, running, video_ok
from vcalld.call import aiortc_hooks
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.room.server import RoomServer

pytestmark = pytest.mark.slow
PEERS = 6
SIZE = (320, 240)


async def test_six_peers_one_encoder(
    daemon_config: Callable[..., VcalldConfig], room_secret_file: Path
) -> None:
    config = RoomServerConfig(
        port=0, max_participants=PEERS + 1, token_secret_file=room_secret_file
    )
    server = RoomServer(config)
    await server.start()
    video = {"width": SIZE[0], "height": SIZE[1], "fps": 15, "encode_once": True}
    try:
        async with contextlib.AsyncExitStack() as stack:
            sender = await stack.enter_async_context(
                running(daemon_config(server, "sender", video=video))
            )
            # The watchers send nothing: seven daemons share this process's one event loop,
            # and the 42 audio streams among them took the CPU the sender's encoder needs
            # (on a slower spell of a 2-core host it dropped every other frame).
            silent = {"video": {"enabled": False}, "audio": {"enabled": False}}
            watchers = [
                await stack.enter_async_context(
                    running(daemon_config(server, f"peer-{i}", **silent))
                )
                for i in range(PEERS)
            ]
            await eventually(
                lambda: all(video_ok(received(w, "sender"), SIZE, 12) for w in watchers), 30
            )
            encoder = sender.outgoing._encoder
            assert encoder is not None
            published = sender.outgoing._stages["video"]  # frames go past it to the encoder
            encoded_before = encoder.encoded
            frames_before = [received(w, "sender")["video"]["frames"] for w in watchers]
            await asyncio.sleep(3)
            encoded = encoder.encoded - encoded_before
            arrived = [
                received(w, "sender")["video"]["frames"] - before
                for w, before in zip(watchers, frames_before, strict=True)
            ]
            transceivers = [
                next(t for t in pc.getTransceivers() if t.kind == "video")
                for pc in sender._backend.peer_connections().values()
            ]
            assert published.dropped == 0
            # Each peer got about every frame, and the frames were encoded once for all six.
            assert all(count >= 0.8 * encoded for count in arrived), (encoded, arrived)
            assert encoded <= 15 * 3 * 1.2, encoded
            assert len(transceivers) == PEERS
            assert not any(aiortc_hooks.video_encoder_used(t) for t in transceivers)
            assert all(t._codecs[0].mimeType == "video/VP8" for t in transceivers)

            # A picture loss at one peer (its sender's PLI handler): the shared encoder makes
            # a keyframe; with none, it makes none (a VP8 call needs no others).
            await asyncio.sleep(1.1)  # past the requests' rate limit
            keyframes = encoder.keyframes
            await asyncio.sleep(1)
            assert encoder.keyframes == keyframes
            transceivers[0].sender._send_keyframe()
            await eventually(lambda: encoder.keyframes == keyframes + 1, 1)
    finally:
        await server.stop()
