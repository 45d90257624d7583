"""Call quality per remote participant, from aiortc's getStats(): rates between two samples.

aiortc reports counters (bytes, packets) and instantaneous values (jitter, round-trip time);
a sampler keeps the previous counters of each peer so it can turn them into kbit/s and loss %.
aiortc's inbound-rtp has no byte counts, so bitrates come from the peer's DTLS transport,
which carries all of its media (bundled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from vcalld.call import aiortc_hooks
from vcalld.call.audio.playout import Source

# Jitter arrives in RTP timestamp units; these are the clock rates of VP8 and Opus.
CLOCK_RATES = {"video": 90_000, "audio": 48_000}
# What the video receivers did since the last sample: frames decoded, frames dropped because
# a loss left them undecodable, holes given up, keyframes asked for, packets asked for again.
VIDEO_RECEIVE_COUNTS = ("frames", "dropped", "holes_given_up", "keyframes_requested", "nacked")


@dataclass
class Counters:
    at: float
    bytes_received: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    jitter_ms: dict[str, float] = field(default_factory=dict)
    rtt_ms: float | None = None
    audio_frames: dict[str, int] = field(default_factory=dict)  # by how each was played
    playout_delay_ms: float | None = None
    red_copies_sent: int | None = None
    video_receive: dict[str, int] = field(default_factory=dict)  # VideoReceiver counts


async def read_counters(pc: RTCPeerConnection) -> Counters:
    counters = Counters(at=time.monotonic())
    report = await pc.getStats()
    for stats in report.values():
        if stats.type == "transport":
            counters.bytes_received += stats.bytesReceived
            counters.bytes_sent += stats.bytesSent
        elif stats.type == "inbound-rtp":
            counters.packets_received += stats.packetsReceived
            counters.packets_lost += max(0, stats.packetsLost)
            counters.jitter_ms[stats.kind] = round(
                1000 * stats.jitter / CLOCK_RATES.get(stats.kind, 90_000), 1
            )
        elif stats.type == "remote-inbound-rtp" and stats.roundTripTime is not None:
            rtt = 1000 * stats.roundTripTime
            counters.rtt_ms = rtt if counters.rtt_ms is None else max(counters.rtt_ms, rtt)
    if counters.rtt_ms is None and (rtt := aiortc_hooks.round_trip_of(pc)) is not None:
        counters.rtt_ms = 1000 * rtt  # a connection that sends no media: ICE's measure
    for transceiver in pc.getTransceivers():
        receiver = aiortc_hooks.receiver_of(transceiver)
        if receiver is not None:
            counters.audio_frames = {s.value: receiver.buffer.counts[s.value] for s in Source}
            counters.playout_delay_ms = round(1000 * receiver.buffer.delay, 1)
        encoder = aiortc_hooks.encoder_of(transceiver)
        if encoder is not None:
            counters.red_copies_sent = encoder.copies
        video = aiortc_hooks.video_receiver_of(transceiver)
        if video is not None:
            for name in VIDEO_RECEIVE_COUNTS:
                counters.video_receive[name] = (
                    counters.video_receive.get(name, 0) + video.assembler.counts[name]
                )
    return counters


class StatsSampler:
    """Turns successive counters into rates; forgets peers that are gone."""

    def __init__(self) -> None:
        self._previous: dict[str, Counters] = {}

    async def sample(self, peers: dict[str, RTCPeerConnection]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        current: dict[str, Counters] = {}
        for participant_id, pc in peers.items():
            now = current[participant_id] = await read_counters(pc)
            before = self._previous.get(participant_id)
            result[participant_id] = _rates(before, now)
        self._previous = current
        return result


def _rates(before: Counters | None, now: Counters) -> dict[str, Any]:
    rates: dict[str, Any] = {
        "jitter_ms": now.jitter_ms,
        "rtt_ms": None if now.rtt_ms is None else round(now.rtt_ms, 1),
        "audio_playout_delay_ms": now.playout_delay_ms,
        "audio_red_copies_sent": now.red_copies_sent,
    }
    if before is None or now.at <= before.at:
        rates.update(
            receive_kbps=None,
            send_kbps=None,
            loss_percent=None,
            audio_frames_percent=None,
            video_receive=None,
        )
        return rates
    seconds = now.at - before.at
    received = now.packets_received - before.packets_received
    lost = now.packets_lost - before.packets_lost
    rates.update(
        receive_kbps=round(8 * (now.bytes_received - before.bytes_received) / seconds / 1000, 1),
        send_kbps=round(8 * (now.bytes_sent - before.bytes_sent) / seconds / 1000, 1),
        loss_percent=round(100 * lost / (received + lost), 2) if received + lost > 0 else 0.0,
        audio_frames_percent=_shares(before.audio_frames, now.audio_frames),
        video_receive={
            name: count - before.video_receive.get(name, 0)
            for name, count in now.video_receive.items()
        }
        or None,
    )
    return rates


def _shares(before: dict[str, int], now: dict[str, int]) -> dict[str, float] | None:
    """How the audio frames played since the last sample came: primary, red, fec,
    concealed, silent (DTX) and stretched (delay raised), in percent."""
    played = {source: now[source] - before.get(source, 0) for source in now}
    total = sum(played.values())
    if not total:
        return None
    return {source: round(100 * count / total, 1) for source, count in played.items()}
