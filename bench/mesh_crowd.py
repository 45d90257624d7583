"""Lightweight mesh participants for bench/group_call.py: each joins a room of vcalld's room
server, connects to the one participant named by `--peer` only (the daemon measured), sends
it the test pattern (or, with `--width 0`, no video) and a tone, and takes its media, as
tests/janus_crowd.py does via Janus, printing once a second what video it receives (a JSON
line per member, as janus_crowd does).

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

from tests.janus_crowd import FrameRates, PatternTrack, ToneTrack, report
from vcalld.call.aiortc_hooks import start_estimate_at
from vcalld.call.backends.mesh_peer import parse_candidate
from vcalld.call.ice import restrict_host_addresses


async def member(  # noqa: PLR0917 - where, who, to whom, what
    server: str,
    room: str,
    name: str,
    peer: str,
    size: tuple[int, int, int],
    rates: FrameRates,
    start_kbps: int | None = None,
) -> None:
    """Sends to `peer` and takes what it sends back (decoded, as any mesh peer would); with
    `start_kbps`, the bandwidth estimate it sends back starts there, as a daemon's does."""
    pc = RTCPeerConnection()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server) as ws,
        asyncio.TaskGroup() as tasks,
    ):

        def take(track: MediaStreamTrack) -> None:
            taking = rates.count(peer, track) if track.kind == "video" else _drain(track)
            tasks.create_task(taking)

        pc.on("track", take)
        try:
            await ws.send_json({"type": "join", "room": room, "name": name})
            async for message in ws:
                payload = json.loads(message.data)
                if payload.get("type") == "joined":
                    target = next(p for p in payload["participants"] if p["name"] == peer)
                    if size[0]:
                        pc.addTransceiver(PatternTrack(*size), direction="sendrecv")
                    else:
                        pc.addTransceiver("video", direction="recvonly")
                    pc.addTransceiver(ToneTrack(), direction="sendrecv")
                    await pc.setLocalDescription(await pc.createOffer())
                    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
                    data = {"description": offer}
                    await ws.send_json({"type": "signal", "to": target["id"], "data": data})
                elif payload.get("type") == "signal" and "description" in payload["data"]:
                    await pc.setRemoteDescription(
                        RTCSessionDescription(**payload["data"]["description"])
                    )
                    if start_kbps:
                        for transceiver in pc.getTransceivers():
                            if transceiver.kind == "video":
                                start_estimate_at(transceiver.receiver, 1000 * start_kbps)
                elif payload.get("type") == "signal" and "candidate" in payload["data"]:
                    # A browser trickles its candidates (a daemon puts them in its answer).
                    await pc.addIceCandidate(parse_candidate(payload["data"]["candidate"]))
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
    members = {name: FrameRates() for name in arguments.names.split(",")}
    try:
        async with asyncio.timeout(arguments.seconds), asyncio.TaskGroup() as tasks:
            for name, rates in members.items():
                tasks.create_task(
                    member(
                        arguments.server,
                        arguments.room,
                        name,
                        arguments.peer,
                        size,
                        rates,
                        arguments.start_kbps,
                    )
                )
            tasks.create_task(report(members))
    except TimeoutError:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--names", required=True)
    parser.add_argument("--peer", default="kiosk")
    parser.add_argument("--width", type=int, default=320, help="0: send no video")
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--start-kbps", type=int, help="where our estimate (REMB) starts")
    asyncio.run(main(parser.parse_args()))
