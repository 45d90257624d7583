"""Whole video frames from RTP packets, in order, and never one with a piece missing.

aiortc's video jitter buffer releases a frame only when the first packet of the next one
arrives (a frame interval late), waits behind a packet that never comes until 512 newer
ones have arrived (~4 s), and then hands frames with holes to the decoder, which shows
them as corrupt pictures. Here a frame goes out as soon as its marker packet closes it and
nothing before it is missing. A missing packet is asked for again (NACK) every round trip,
and given up after about two round trips: then every frame up to the next keyframe is
dropped, not decoded, and a keyframe is wanted. A hole in that keyframe is waited for as
long as it is asked for: giving it up would only ask for another keyframe, as likely to be
hit as this one.

Pure logic with the clock passed in, so tests can drive it packet by packet.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.rtp import RtpPacket

from vcalld.call.video.payloads import PayloadFormat

DEFAULT_RTT_SECONDS = 0.1  # until the connection has measured one
# A hole is given up after two round trips, but not sooner than this: on a short round trip
# that leaves ~10 NACK rounds, and a give-up costs a keyframe, itself likely to be hit. In the
# simulated call of tests/test_video_receiver.py (5 ms round trip, 30% loss each way) a 40 ms
# floor showed 229 of 304 frames and froze 2.3 s in 10; 100 ms showed 283 and froze 0.4 s.
MIN_HOLE_WAIT_SECONDS = 0.1
MIN_NACK_INTERVAL_SECONDS = 0.01  # asyncio's timers on a busy device are about this coarse
NACK_MARGIN = 1.25  # ask again only once the retransmission is a quarter of a round trip late
MAX_NACKS = 10  # per packet
MAX_GAP = 1000  # a jump in sequence numbers larger than this is a new stream
MAX_PENDING_PACKETS = 1024  # ~1 s of 1080p at 10 Mbit/s: memory stays bounded whatever comes


@dataclass(frozen=True)
class AssembledFrame:
    data: bytes
    timestamp: int
    payload_type: int
    keyframe: bool


@dataclass
class _Missing:
    since: float
    nacked_at: float | None = None
    nacks: int = 0


class FrameAssembler:
    """One incoming video stream's frames. `format_of` reads the payloads of a payload
    type (None: marker bits alone); `rtt` (seconds) is set by the owner."""

    def __init__(self, format_of: Callable[[int], PayloadFormat | None]) -> None:
        self.rtt = DEFAULT_RTT_SECONDS
        self.counts: collections.Counter[str] = collections.Counter()
        self.keyframe_wanted = False  # a frame was lost, so only a keyframe can follow
        self.new_gaps = False  # packets went missing since the last nacks_due()
        self._format_of = format_of
        self._ssrc: int | None = None
        self._packets: dict[int, RtpPacket] = {}  # by extended sequence number
        self._missing: dict[int, _Missing] = {}
        self._highest: int | None = None
        self._next: int | None = None  # the next frame's first packet; None: not known yet
        self._needs_keyframe = True

    @property
    def ssrc(self) -> int | None:
        return self._ssrc

    @property
    def hole_wait(self) -> float:
        return max(2 * self.rtt, MIN_HOLE_WAIT_SECONDS)

    @property
    def nack_interval(self) -> float:
        return max(NACK_MARGIN * self.rtt, MIN_NACK_INTERVAL_SECONDS)

    def add(self, packet: RtpPacket, now: float) -> list[AssembledFrame]:
        """Takes a packet (retransmissions unwrapped); returns the frames it completed."""
        if packet.ssrc != self._ssrc:
            self._restart(packet.ssrc)
        sequence = self._extend(packet.sequence_number)
        if self._highest is None or abs(sequence - self._highest) > MAX_GAP:
            self._restart(packet.ssrc)
            self._highest = sequence
        elif sequence > self._highest:
            for lost in range(self._highest + 1, sequence):
                self._missing[lost] = _Missing(since=now)
                self.new_gaps = True
            self._highest = sequence
        elif self._missing.pop(sequence, None) is None:
            self.counts["late_or_duplicate"] += 1
            return []
        self._packets[sequence] = packet
        while len(self._packets) > MAX_PENDING_PACKETS:
            self._give_up_to(min(self._packets))
        return self._release()

    def expire(self, now: float) -> list[AssembledFrame]:
        """Gives up the oldest hole if its time is out; returns the frames that follow."""
        hole = self._oldest_hole()
        if hole is None or now < self._give_up_at(hole):
            return []
        self.counts["holes_given_up"] += 1
        self._give_up_to(hole)
        return self._release()

    def nacks_due(self, now: float) -> list[int]:
        """The sequence numbers to ask for now: new holes, and older ones not yet refilled
        a round trip after the last ask."""
        self.new_gaps = False
        due = []
        for sequence, missing in self._missing.items():
            if missing.nacks >= MAX_NACKS:
                continue
            if missing.nacked_at is None or now - missing.nacked_at >= self.nack_interval:
                missing.nacked_at, missing.nacks = now, missing.nacks + 1
                due.append(sequence & 0xFFFF)
        self.counts["nacked"] += len(due)
        return due

    def next_deadline(self) -> float | None:
        """When expire() or nacks_due() will next have something to do."""
        deadlines = [
            (missing.nacked_at or missing.since) + self.nack_interval
            for missing in self._missing.values()
            if missing.nacks < MAX_NACKS
        ]
        hole = self._oldest_hole()
        if hole is not None:
            deadlines.append(self._give_up_at(hole))
        return min(deadlines, default=None)

    def _give_up_at(self, hole: int) -> float:
        since = self._missing[hole].since
        if self._needs_keyframe and self._repairing_keyframe():
            return since + max(self.hole_wait, (MAX_NACKS + 1) * self.nack_interval)
        return since + self.hole_wait

    def _repairing_keyframe(self) -> bool:
        """The frame being put together is the keyframe the decoder waits for."""
        first = self._packets.get(self._next) if self._next is not None else None
        if first is None:
            return False
        payload_format = self._format_of(first.payload_type)
        return payload_format is not None and payload_format.opens_keyframe(depayloaded(first))

    def _release(self) -> list[AssembledFrame]:
        frames = []
        while self._next is not None or self._resync():
            assert self._next is not None
            end = self._frame_end(self._next)
            if end is None:
                break
            frame = self._take(self._next, end)
            self._next = end + 1
            if self._needs_keyframe and not frame.keyframe:
                self.counts["dropped"] += 1
                self.keyframe_wanted = True
                continue
            self._needs_keyframe = self.keyframe_wanted = False
            self.counts["frames"] += 1
            frames.append(frame)
        return frames

    def _frame_end(self, start: int) -> int | None:
        """The last packet of the frame that starts at `start`, if all of it is here."""
        first = self._packets.get(start)
        if first is None:
            return None
        sequence = start
        while (packet := self._packets.get(sequence)) is not None:
            if packet.timestamp != first.timestamp:
                return sequence - 1  # the marker packet was never sent: the next frame began
            if packet.marker:
                return sequence
            sequence += 1
        return None

    def _take(self, start: int, end: int) -> AssembledFrame:
        packets = [self._packets.pop(sequence) for sequence in range(start, end + 1)]
        data = b"".join(depayloaded(packet) for packet in packets)
        payload_format = self._format_of(packets[0].payload_type)
        return AssembledFrame(
            data=data,
            timestamp=packets[0].timestamp,
            payload_type=packets[0].payload_type,
            keyframe=payload_format is None or payload_format.is_keyframe(data),
        )

    def _resync(self) -> bool:
        """Finds where a frame starts when the packet before it is lost for good (or the
        stream began mid-frame): drops what comes before. False: no start is here yet."""
        for sequence in sorted(self._packets):
            packet, before = self._packets[sequence], self._packets.get(sequence - 1)
            closes = before is not None and (before.marker or before.timestamp != packet.timestamp)
            payload_format = self._format_of(packet.payload_type)
            if closes or (
                payload_format is not None and payload_format.starts_frame(packet.payload)
            ):
                self._drop_before(sequence)
                self._next = sequence
                return True
        return False

    def _give_up_to(self, sequence: int) -> None:
        """Everything up to `sequence` is lost: the decoder must wait for a keyframe."""
        self._drop_before(sequence + 1)
        self._next = None
        self._needs_keyframe = self.keyframe_wanted = True

    def _drop_before(self, sequence: int) -> None:
        for older in [s for s in self._packets if s < sequence]:
            del self._packets[older]
            self.counts["packets_dropped"] += 1
        for older in [s for s in self._missing if s < sequence]:
            del self._missing[older]

    def _oldest_hole(self) -> int | None:
        return min(self._missing, default=None)

    def _extend(self, sequence: int) -> int:
        """The 16-bit sequence number as a count that does not wrap."""
        if self._highest is None:
            return sequence + (1 << 16)  # room below for packets that come out of order
        delta = (sequence - self._highest) & 0xFFFF
        return self._highest + (delta - 0x10000 if delta >= 0x8000 else delta)

    def _restart(self, ssrc: int) -> None:
        """A new stream, or the old one restarted: nothing before it can be used."""
        self._ssrc = ssrc
        self._packets.clear()
        self._missing.clear()
        self._highest = self._next = None
        self._needs_keyframe = True


def depayloaded(packet: RtpPacket) -> bytes:
    """The payload without its RTP payload headers: aiortc's receiver depayloads each packet
    before it reaches the jitter buffer, and leaves the result on the packet."""
    data: bytes = packet._data  # type: ignore[attr-defined]
    return data
