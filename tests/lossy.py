"""Impairments at a peer connection's UDP sockets, in-process: random packet loss from a fixed
seed (the same pattern on every run, on media, RTCP and ICE checks alike), and ICE checks
answered late."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aioice import stun
from aiortc import RTCPeerConnection


class Loss:
    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._random = random.Random(seed)
        self.dropped = 0
        self.passed = 0

    def drops(self) -> bool:
        dropped = self._random.random() < self.rate
        self.dropped += dropped
        self.passed += not dropped
        return dropped


def ice_connection(pc: RTCPeerConnection) -> Any:
    """`pc`'s aioice connection (one transport for all its media: bundled)."""
    return pc.getTransceivers()[0].receiver.transport.transport._connection


def impair(pc: RTCPeerConnection, loss: Loss, *, outbound: bool = False) -> None:
    """Drop what `pc` receives (and, with `outbound`, what it sends) at `loss.rate`."""
    for protocol in ice_connection(pc)._protocols:
        _drop_received(protocol, loss)
        if outbound:
            _drop_sent(protocol, loss)


def _drop_received(protocol: Any, loss: Loss) -> None:
    receive = protocol.datagram_received

    def datagram_received(data: bytes, addr: Any) -> None:
        if not loss.drops():
            receive(data, addr)

    protocol.datagram_received = datagram_received


def _drop_sent(protocol: Any, loss: Loss) -> None:
    send_data, send_stun = protocol.send_data, protocol.send_stun

    async def data(payload: bytes, addr: Any) -> None:
        if not loss.drops():
            await send_data(payload, addr)

    def stun(message: Any, addr: Any) -> None:
        if not loss.drops():
            send_stun(message, addr)

    protocol.send_data, protocol.send_stun = data, stun


def answer_stun_late(pc: RTCPeerConnection, seconds: float) -> None:
    """`pc` answers ICE checks `seconds` late, as an overloaded device does."""
    loop = asyncio.get_running_loop()
    for protocol in ice_connection(pc)._protocols:
        send_stun = protocol.send_stun

        def late(message: Any, addr: Any, send: Any = send_stun) -> None:
            if message.message_class == stun.Class.RESPONSE:
                loop.call_later(seconds, send, message, addr)
            else:
                send(message, addr)

        protocol.send_stun = late
