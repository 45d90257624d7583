"""Random packet loss at a peer connection's UDP sockets, in-process, from a fixed seed: the
same pattern on every run, on media, RTCP and ICE checks alike."""

from __future__ import annotations

import random
from typing import Any

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


def impair(pc: RTCPeerConnection, loss: Loss, *, outbound: bool = False) -> None:
    """Drop what `pc` receives (and, with `outbound`, what it sends) at `loss.rate`."""
    connection: Any = pc.getTransceivers()[0].receiver.transport.transport._connection
    for protocol in connection._protocols:
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
