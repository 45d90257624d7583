"""Lightweight mesh participants for bench/group_call.py: each joins a room of vcalld's room
server, connects to the one participant named by `--peer` only (the daemon measured), sends
it the test pattern and a tone and takes its media, as tests/janus_crowd.py does via Janus.

    python -m bench.mesh_crowd --server ws://127.0.0.1:8080/ws --room bench --names a,b,c

The daemon so sees a full mesh of its own (one connection to each member), while the
members spare the machine the connections among themselves. Ends after `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tests.janus_crowd import PatternTrack, ToneTrack
from vcalld.call.ice import restrict_host_addresses


async def member(server: str, room: str, name: str, peer: str, size: tuple[int, int, int]) -> None:
    """Sends to `peer` and takes what it sends back (decoded, as any mesh peer would)."""
    pc = RTCPeerConnection()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server) as ws,
        asyncio.TaskGroup() as tasks,
    ):
        pc.on("track", lambda track: tasks.create_task(_drain(track)))
        try:
            await ws.send_json({"type": "join", "room": room, "name": name})
            async for message in ws:
                payload = json.loads(message.data)
                if payload.get("type") == "joined":
                    target = next(p for p in payload["participants"] if p["name"] == peer)
                    pc.addTransceiver(PatternTrack(*size), direction="sendrecv")
                    pc.addTransceiver(ToneTrack(), direction="sendrecv")
                    await pc.setLocalDescription(await pc.createOffer())
                    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
                    data = {"description": offer}
                    await ws.send_json({"type": "signal", "to": target["id"], "data": data})
                elif payload.get("type") == "signal" and "description" in payload["data"]:
                    await pc.setRemoteDescription(
                        RTCSessionDescription(**payload["data"]["description"])
                    )
        finally:
            await pc.close()


async def _drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        return


async def main(arguments: argparse.Namespace) -> None:
    restrict_host_addresses(["127.0.0.1"])
    size = (arguments.width, arguments.height, arguments.fps)
    try:
        async with asyncio.timeout(arguments.seconds), asyncio.TaskGroup() as tasks:
            for name in arguments.names.split(","):
                tasks.create_task(
                    member(arguments.server, arguments.room, name, arguments.peer, size)
                )
    except TimeoutError:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--names", required=True)
    parser.add_argument("--peer", default="kiosk")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=300)
    asyncio.run(main(parser.parse_args()))
