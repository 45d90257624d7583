"""One remote audio stream: RTP packets in, one decoded 48 kHz stereo frame per due time out."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable

from av import AudioFrame

from vcalld.call.audio import opus, red
from vcalld.call.audio.playout import Frame, Playout, PlayoutBuffer, Source

log = logging.getLogger(__name__)
TIME_BASE = fractions.Fraction(1, opus.SAMPLE_RATE)
CHANNELS = 2  # what aiortc's decoder delivered, and so what every sink takes


class AudioReceiver:
    """Feeds `deliver` in real time from a PlayoutBuffer, decoding, recovering or concealing.

    Decoding runs in the event loop: a 20 ms Opus frame takes ~50 us, far less than a hop
    to a thread and back, and keeping it here keeps the decoder's calls in order.
    """

    def __init__(
        self,
        deliver: Callable[[AudioFrame], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        buffer: PlayoutBuffer | None = None,
    ) -> None:
        self._deliver = deliver
        self._clock = clock
        self.buffer = buffer or PlayoutBuffer()
        self._decoder = opus.Decoder(CHANNELS)
        self._arrived = asyncio.Event()
        self._samples_out = 0

    def packet(self, payload: bytes, rtp_timestamp: int, *, opus_type: int, is_red: bool) -> None:
        """An RTP packet's payload; one that is not Opus or RED over Opus is counted, dropped."""
        try:
            frames = self._frames(payload, opus_type, is_red)
        except (opus.OpusError, red.RedError) as error:
            self.buffer.counts["malformed"] += 1
            log.debug("dropped an audio packet: %s", error)
            return
        self.buffer.counts["red_packets" if is_red else "opus_packets"] += 1
        if frames:
            self.buffer.put(rtp_timestamp, frames, self._clock())
            self._arrived.set()

    async def run(self) -> None:
        """Until cancelled; idle while the stream is quiet."""
        try:
            while True:
                due = self.buffer.due()
                if due is None:
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                delay = due - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                frame = self.play()
                if frame is not None:
                    self._deliver(frame)
        finally:
            self._decoder.close()

    def play(self) -> AudioFrame | None:
        """The frame due now, decoded, recovered or concealed; None once the stream is quiet."""
        playout = self.buffer.take(self._clock())
        return self._decode(playout) if playout is not None else None

    def _frames(self, payload: bytes, opus_type: int, is_red: bool) -> list[Frame]:
        if not payload:
            return []
        blocks = red.unpack(payload) if is_red else [red.Block(0, opus_type, payload)]
        return [
            Frame(block.data, opus.frame_samples(block.data), opus.has_fec(block.data), block.age)
            for block in blocks
            if block.payload_type == opus_type and block.data
        ]

    def _decode(self, playout: Playout) -> AudioFrame:
        if playout.source is Source.FEC:
            assert playout.payload is not None
            pcm = self._decoder.decode_fec(playout.payload, playout.samples)
        elif playout.payload is not None:
            pcm = self._decoder.decode(playout.payload)
        else:
            pcm = self._decoder.conceal(playout.samples)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = opus.SAMPLE_RATE
        frame.pts, frame.time_base = self._samples_out, TIME_BASE
        self._samples_out += frame.samples
        return frame
