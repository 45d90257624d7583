"""A time-based playout buffer for one incoming audio stream.

aiortc releases an audio frame only when it and the next four packets are all present, so
under random loss it throws most received audio away and holds ~300 ms. Here every frame
has a due time instead: `timestamp / rate + offset`, where the offset follows the lowest
recent network delay plus the spread of delays, plus time for the copies of a lost frame
(Opus FEC in the next packet, RED in the ones after) to arrive while the sender sends
them: it does so only while it hears of loss, so a clean network gets the low delay.
A frame that is missing at its due time is recovered from such a copy or concealed; a
packet that comes after its frame was played is dropped and never adds delay.

Pure logic with the clock passed in, so tests can drive it packet by packet.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass

from vcalld.call.audio import opus

CLOCK_RATE = 48000
DELAY_WINDOW_SECONDS = 2.0
# The spread of delays raises the hold at once and lowers it only after this long: jitter
# comes in bursts, and following every one up and down costs a made-up frame each time.
SPREAD_MEMORY_SECONDS = 10.0
SHRINK_INTERVAL_SECONDS = 0.25  # drop at most one frame this often to shed delay
RESET_SECONDS = 2.0  # a timestamp this far from the playout point starts a new stream
IDLE_SECONDS = 0.5  # stop concealing when nothing at all has arrived for this long
SAFETY_SECONDS = 0.005  # scheduling slack: the loop wakes a little late
# Beyond this, hold no longer: conceal. Not lower: an overloaded device (the emulated test
# bed) hands packets on late in bursts, and a 300 ms cap there concealed 72% of the frames.
MAX_HOLD_SECONDS = 1.0


class Source(enum.Enum):
    PRIMARY = "primary"  # the packet of this frame
    RED = "red"  # a redundant copy in a later packet
    FEC = "fec"  # the next packet's in-band copy
    CONCEALED = "concealed"  # nothing arrived in time: made up by the decoder
    SILENT = "silent"  # the sender stopped sending in DTX: comfort noise, not loss
    STRETCHED = "stretched"  # made up to raise the delay, not for a loss


@dataclass(frozen=True)
class Frame:
    """One encoded frame of a packet; `age` > 0 (RTP units): a RED copy of an older one."""

    payload: bytes
    samples: int
    has_fec: bool = False
    age: int = 0


@dataclass(frozen=True)
class Playout:
    """What to decode for the frame at `timestamp`; `payload` is None when concealing."""

    timestamp: int
    samples: int
    source: Source
    payload: bytes | None


class PlayoutBuffer:
    def __init__(self, *, frame_samples: int = 960, min_delay: float = 0.0) -> None:
        self._frame_samples = frame_samples
        self._min_delay = min_delay
        self._entries: dict[int, Frame] = {}
        # (arrival, arrival - send time, frame times until a frame's last copy is in)
        self._recent: collections.deque[tuple[float, float, int]] = collections.deque()
        # (when, spread), spreads decreasing: the largest of the memory is first
        self._spreads: collections.deque[tuple[float, float]] = collections.deque()
        self._unwrap_last: int | None = None
        self._unwrap_base = 0
        self._next: int | None = None
        self._offset = 0.0
        self._last_shrink = float("-inf")
        self._last_dtx = False
        self.counts: collections.Counter[str] = collections.Counter()

    # -- arrivals

    def put(self, rtp_timestamp: int, frames: list[Frame], arrival: float) -> None:
        """One RTP packet that came at `arrival`: its own frame and any RED copies."""
        timestamp = self._unwrap(rtp_timestamp)
        if self._next is not None and abs(timestamp - self._next) > RESET_SECONDS * CLOCK_RATE:
            self._restart()
            timestamp = self._unwrap(rtp_timestamp)
        primary = next((frame for frame in frames if not frame.age), None)
        oldest = max(frame.age for frame in frames)
        # A frame's last copy comes `depth` frames after it: its oldest RED copy, and one
        # frame later the FEC inside the oldest copy of the frame after it.
        depth = -(-oldest // self._frame_samples) + (1 if primary and primary.has_fec else 0)
        self._record(arrival, arrival - timestamp / CLOCK_RATE, depth)
        if self._next is None:
            self._next = timestamp if primary else timestamp - oldest
            self._offset = self.target_offset()
        for frame in frames:
            self._store(timestamp - frame.age, frame)

    def _store(self, timestamp: int, frame: Frame) -> None:
        assert self._next is not None
        if timestamp < self._next:
            self.counts["late" if not frame.age else "late_copy"] += 1
        elif timestamp not in self._entries or not frame.age:
            self._entries[timestamp] = frame

    # -- playout

    def due(self) -> float | None:
        """When the next frame should be handed on (the caller's clock), or None when idle."""
        if self._next is None:
            return None
        return self._next / CLOCK_RATE + self._offset

    def take(self, now: float) -> Playout | None:
        """The next frame, or None once the stream has gone quiet (then `due()` is None)."""
        if self._next is None:
            return None
        if not self._entries and (not self._recent or now - self._recent[-1][0] > IDLE_SECONDS):
            self._restart()
            return None
        # Delay moves a frame at a time, and never stays below the target's safety margin:
        # there the fastest packets come after their frame is due, every frame would be
        # late and concealed. (A band of half a frame each way let it settle 6 ms below
        # the lowest delay, and a call concealed all it received.) So it rises as soon as it
        # is more than the margin short, and drops a frame only when it is left no lower.
        target = self.target_offset()
        samples = self._frame_samples
        step = samples / CLOCK_RATE
        if target > self._offset + SAFETY_SECONDS:
            self._offset += step
            return self._count(Playout(self._next, samples, Source.STRETCHED, None))
        shrinkable = target <= self._offset - step + SAFETY_SECONDS
        if shrinkable and now - self._last_shrink >= SHRINK_INTERVAL_SECONDS:
            self._last_shrink = now
            self._offset -= step
            self._advance(self._entries.pop(self._next, None))
            self.counts["dropped"] += 1
        return self._count(self._take_next())

    def target_offset(self) -> float:
        """Lowest recent delay + its spread (95th percentile, the largest of the last
        SPREAD_MEMORY_SECONDS) + time for copies to arrive, the hold capped."""
        if not self._recent:
            return self._min_delay
        ordered = sorted(delay for _, delay, _ in self._recent)
        base = ordered[0]
        spread = self._largest_spread(ordered[int(0.95 * (len(ordered) - 1))] - base)
        allowance = max(self._min_delay, spread + SAFETY_SECONDS)
        depth = max(depth for _, _, depth in self._recent)
        hold = allowance + depth * self._frame_samples / CLOCK_RATE
        return base + min(hold, MAX_HOLD_SECONDS)

    @property
    def delay(self) -> float:
        """How long after the fastest recent packet a frame is played."""
        if not self._recent:
            return 0.0
        return self._offset - min(delay for _, delay, _ in self._recent)

    # -- internals

    def _take_next(self) -> Playout:
        assert self._next is not None
        timestamp = self._next
        entry = self._entries.pop(timestamp, None)
        if entry is not None:
            self._advance(entry)
            source = Source.RED if entry.age else Source.PRIMARY
            return Playout(timestamp, entry.samples, source, entry.payload)
        samples = self._frame_samples
        if self._last_dtx:
            self._advance(None)
            return Playout(timestamp, samples, Source.SILENT, None)
        following = self._entries.get(timestamp + samples)
        self._advance(None)
        if following is not None and following.has_fec:
            return Playout(timestamp, samples, Source.FEC, following.payload)
        return Playout(timestamp, samples, Source.CONCEALED, None)

    def _advance(self, entry: Frame | None) -> None:
        assert self._next is not None
        if entry is not None:
            self._frame_samples = entry.samples
            self._last_dtx = opus.is_dtx(entry.payload)
        self._next += self._frame_samples
        for stale in [timestamp for timestamp in self._entries if timestamp < self._next]:
            del self._entries[stale]

    def _count(self, playout: Playout) -> Playout:
        self.counts[playout.source.value] += 1
        return playout

    def _record(self, arrival: float, delay: float, depth: int) -> None:
        self._recent.append((arrival, delay, depth))
        while self._recent[0][0] < arrival - DELAY_WINDOW_SECONDS:
            self._recent.popleft()

    def _unwrap(self, rtp_timestamp: int) -> int:
        if self._unwrap_last is not None:
            step = (rtp_timestamp - self._unwrap_last) & 0xFFFFFFFF
            if step >= 1 << 31:
                step -= 1 << 32
            self._unwrap_base += step
        else:
            self._unwrap_base = rtp_timestamp
        self._unwrap_last = rtp_timestamp
        return self._unwrap_base

    def _largest_spread(self, spread: float) -> float:
        now = self._recent[-1][0]
        while self._spreads and self._spreads[-1][1] <= spread:
            self._spreads.pop()
        self._spreads.append((now, spread))
        while self._spreads[0][0] < now - SPREAD_MEMORY_SECONDS:
            self._spreads.popleft()
        return self._spreads[0][1]

    def _restart(self) -> None:
        self._entries.clear()
        self._recent.clear()
        self._spreads.clear()
        self._next = None
        self._unwrap_last = None
        self._last_dtx = False
