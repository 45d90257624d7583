"""One remote video stream: RTP packets in, whole frames to the decoder, feedback out on time.

The assembler decides; this keeps its timers: NACKs when they are due, a hole given up when
its wait is over, and keyframe requests (PLI) while one is wanted, at most one per
KEYFRAME_REQUEST_SECONDS whoever asks (aiortc's decoder asks too, on a decoding error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from aiortc.rtp import RtpPacket

from vcalld.call.video.assembler import AssembledFrame, FrameAssembler

# Long enough for a requested keyframe to arrive before asking again, and short enough
# that a lost request (or a keyframe broken by loss) costs no more than this much freeze.
KEYFRAME_REQUEST_SECONDS = 0.25


class Feedback(Protocol):
    """The RTCP messages the receiver sends, to the stream's SSRC."""

    async def nack(self, ssrc: int, sequence_numbers: list[int]) -> None: ...

    async def picture_loss(self, ssrc: int) -> None: ...


class VideoReceiver:
    def __init__(
        self,
        assembler: FrameAssembler,
        deliver: Callable[[AssembledFrame], None],
        feedback: Feedback,
        round_trip: Callable[[], float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assembler = assembler
        self._deliver = deliver
        self._feedback = feedback
        self._round_trip = round_trip
        self._clock = clock
        self._woken = asyncio.Event()
        self._last_keyframe_request = -KEYFRAME_REQUEST_SECONDS

    def packet(self, packet: RtpPacket) -> None:
        for frame in self.assembler.add(packet, self._clock()):
            self._deliver(frame)
        if self.assembler.new_gaps or self.assembler.keyframe_wanted:
            self._woken.set()

    async def request_keyframe(self, ssrc: int) -> None:
        """A PLI, unless one went less than KEYFRAME_REQUEST_SECONDS ago."""
        now = self._clock()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_SECONDS:
            return
        self._last_keyframe_request = now
        self.assembler.counts["keyframes_requested"] += 1
        await self._feedback.picture_loss(ssrc)

    async def run(self) -> None:
        """Until cancelled; asleep while nothing is missing."""
        while True:
            rtt = self._round_trip()
            if rtt is not None:
                self.assembler.rtt = rtt
            await self.service(self._clock())
            self._woken.clear()
            deadline = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._woken.wait()

    async def service(self, now: float) -> None:
        """Does what is due at `now`: frames freed by a hole given up, NACKs, a PLI."""
        for frame in self.assembler.expire(now):
            self._deliver(frame)
        ssrc = self.assembler.ssrc
        if ssrc is None:
            return
        lost = self.assembler.nacks_due(now)
        if lost:
            await self._feedback.nack(ssrc, lost)
        if self.assembler.keyframe_wanted:
            await self.request_keyframe(ssrc)

    def _next_deadline(self) -> float | None:
        deadlines = [self.assembler.next_deadline()]
        if self.assembler.keyframe_wanted:
            deadlines.append(self._last_keyframe_request + KEYFRAME_REQUEST_SECONDS)
        return min((d for d in deadlines if d is not None), default=None)
