"""The video receive path: a frame goes to the decoder at its marker packet, whole or not at
all; a missing packet is asked for again every round trip and given up after about two, and
then only a keyframe is decoded, asked for at most every KEYFRAME_REQUEST_SECONDS.

Most cases take aiortc's own VP8 and H.264 encoders' and packetisers' output for the stamped
test pattern through channels that lose it (and the NACKs, PLIs and retransmissions) at
random from a fixed seed, on a simulated clock, so each runs the same on every machine. The
last is a call between two daemons at 30% loss each way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import aiortc.codecs.h264
import aiortc.codecs.vpx
import numpy as np
import pytest
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av import VideoFrame

from tests.helpers import eventually, received, running, video_ok
from tests.lossy import Loss, impair
from vcalld.call import aiortc_hooks
from vcalld.call.video.assembler import AssembledFrame, FrameAssembler
from vcalld.call.video.payloads import H264, Vp8, payload_format
from vcalld.call.video.receiver import KEYFRAME_REQUEST_SECONDS, VideoReceiver
from vcalld.config import VcalldConfig
from vcalld.media.h264 import nal_type, nal_units
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import PatternPainter, read_stamp
from vcalld.room.server import RoomServer

WIDTH, HEIGHT, FPS = 320, 240, 30
PACKET_MAX = 120  # bytes: each frame spans several packets, as a 720p frame does
SSRC = 1234
CODECS = {
    "VP8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97),
    "H264": RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=99,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    ),
}
painter = PatternPainter(WIDTH, HEIGHT)


@pytest.fixture(autouse=True)
def small_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc.codecs.vpx, "PACKET_MAX", PACKET_MAX)
    monkeypatch.setattr(aiortc.codecs.h264, "PACKET_MAX", PACKET_MAX)


class Sender:
    """aiortc's encoder and packetiser for one codec, numbering packets as its sender does,
    and keeping them for retransmission."""

    def __init__(self, codec: RTCRtpCodecParameters, first_sequence: int = 65500) -> None:
        self.codec = codec
        self._encoder = get_encoder(codec)
        self._sequence = first_sequence
        self._counter = 0
        self.history: dict[int, RtpPacket] = {}
        self.sent: dict[int, bytes] = {}  # each frame's depayloaded bytes, by timestamp
        self.keyframes = 0

    def frame(self, keyframe: bool = False) -> list[RtpPacket]:
        picture = VideoFrame.from_ndarray(painter.paint(self._counter), format="yuv420p")
        picture.pts, picture.time_base = self._counter, Fraction(1, FPS)
        self._counter += 1
        payloads, timestamp = self._encoder.encode(picture, force_keyframe=keyframe)
        packets = []
        for index, payload in enumerate(payloads):
            assert self.codec.payloadType is not None
            packet = RtpPacket(
                payload_type=self.codec.payloadType,
                marker=int(index == len(payloads) - 1),
                sequence_number=self._sequence,
                timestamp=timestamp,
                ssrc=SSRC,
                payload=payload,
            )
            packet._data = depayload(self.codec, payload)  # type: ignore[attr-defined]
            self.history[self._sequence] = packet
            self._sequence = (self._sequence + 1) & 0xFFFF
            packets.append(packet)
        self.sent[timestamp] = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
        self.keyframes += payload_format(self.codec.mimeType).is_keyframe(  # type: ignore[union-attr]
            self.sent[timestamp]
        )
        return packets


def assembler_for(codec: RTCRtpCodecParameters) -> FrameAssembler:
    return FrameAssembler(lambda payload_type: payload_format(codec.mimeType))


def decoded(codec: RTCRtpCodecParameters, frames: list[tuple[int, bytes]]) -> dict[int, Any]:
    """Each frame's decoded luma, by timestamp: decoding is exact, so a frame whose references
    all reached the decoder comes out identical to the same frame decoded without loss."""
    decoder = get_decoder(codec)
    pictures = {}
    for timestamp, data in frames:
        (picture,) = decoder.decode(JitterFrame(data, timestamp))
        assert isinstance(picture, VideoFrame)
        pictures[timestamp] = picture_plane(picture, 0).copy()
    return pictures


def as_received(frames: list[AssembledFrame]) -> list[tuple[int, bytes]]:
    return [(frame.timestamp, frame.data) for frame in frames]


@pytest.mark.parametrize("name", ["VP8", "H264"])
def test_each_frame_goes_out_at_its_marker_packet_across_the_sequence_wrap(name: str) -> None:
    codec = CODECS[name]
    sender, assembler = Sender(codec, first_sequence=65530), assembler_for(codec)
    frames = []
    for index in range(12):
        packets = sender.frame()
        for packet in packets[:-1]:
            assert assembler.add(packet, index / FPS) == []
        (frame,) = assembler.add(packets[-1], index / FPS)
        assert frame.data == sender.sent[frame.timestamp]
        frames.append(frame)
    assert sender.history.keys() >= {65535, 0}, "the numbers wrapped"
    assert frames[0].keyframe and not any(f.keyframe for f in frames[1:])
    pictures = decoded(codec, as_received(frames))
    assert [read_stamp(luma) for luma in pictures.values()] == list(range(12))


def test_reordered_packets_wait_for_each_other() -> None:
    codec = CODECS["VP8"]
    sender, assembler = Sender(codec), assembler_for(codec)
    key = sender.frame()
    assert len(key) >= 3
    assert assembler.add(key[0], 0) == []
    assert assembler.add(key[2], 0) == []  # one is missing: nothing yet
    assert assembler.nacks_due(0) == [key[1].sequence_number]
    for packet in key[3:]:
        assert assembler.add(packet, 0) == []
    (frame,) = assembler.add(key[1], 0.001)
    assert frame.keyframe and frame.data == sender.sent[frame.timestamp]
    assert assembler.nacks_due(1.0) == []


def test_a_lost_packet_is_asked_for_each_round_trip_then_given_up_for_a_keyframe() -> None:
    codec = CODECS["VP8"]
    sender, assembler = Sender(codec), assembler_for(codec)
    assembler.rtt = 0.04
    key = sender.frame()
    assert [f.keyframe for p in key for f in assembler.add(p, 0)] == [True]
    lost, *rest = sender.frame()
    assert rest, "the frame has more packets"
    for packet in rest:
        assert assembler.add(packet, 0.033) == []  # the hole is seen now
    assert assembler.nacks_due(0.033) == [lost.sequence_number]
    assert assembler.next_deadline() == pytest.approx(0.033 + assembler.nack_interval)
    assert [f for p in sender.frame() for f in assembler.add(p, 0.066)] == []  # waits
    again = 0.033 + assembler.nack_interval
    assert assembler.nacks_due(again - 0.001) == []  # not before a round trip has passed
    assert assembler.nacks_due(again + 0.001) == [lost.sequence_number]
    assert assembler.expire(0.033 + assembler.hole_wait - 0.001) == []
    assert not assembler.keyframe_wanted
    assert assembler.expire(0.033 + assembler.hole_wait) == []  # given up: no keyframe yet
    assert assembler.keyframe_wanted and assembler.counts["holes_given_up"] == 1
    assert [f for p in sender.frame() for f in assembler.add(p, 0.1)] == []  # not decodable
    assert assembler.counts["dropped"] >= 1
    fresh = sender.frame(keyframe=True)
    (frame,) = [f for p in fresh for f in assembler.add(p, 0.133)]
    assert frame.keyframe and not assembler.keyframe_wanted
    assert assembler.add(lost, 0.15) == [], "a retransmission after the give-up is late"


def test_a_packet_is_asked_for_at_most_max_nacks_times() -> None:
    codec = CODECS["VP8"]
    sender, assembler = Sender(codec), assembler_for(codec)
    assembler.rtt = 10.0  # never give the hole up in this test
    for packet in sender.frame():
        assembler.add(packet, 0)
    lost, *rest = sender.frame()
    for packet in rest:
        assembler.add(packet, 0)
    asks = sum(lost.sequence_number in assembler.nacks_due(10.0 * t) for t in range(30))
    assert asks == 10


@pytest.mark.parametrize("name", ["VP8", "H264"])
def test_payload_readers_find_frame_starts_and_keyframes(name: str) -> None:
    codec = CODECS[name]
    reader = payload_format(codec.mimeType)
    assert isinstance(reader, Vp8 if name == "VP8" else H264)
    sender = Sender(codec)
    for index in range(6):
        packets = sender.frame(keyframe=index == 3)
        assert len(packets) > 1
        starts = [reader.starts_frame(p.payload) for p in packets]
        assert starts == [True] + [False] * (len(packets) - 1)
        frame = sender.sent[packets[0].timestamp]
        assert reader.is_keyframe(frame) == (index in (0, 3))
    if name == "H264":
        first = nal_units(sender.sent[min(sender.sent)])
        assert [nal_type(unit) for unit in first[:2]] == [7, 8]  # SPS, PPS first


def test_a_new_ssrc_starts_a_new_stream() -> None:
    codec = CODECS["VP8"]
    sender, assembler = Sender(codec), assembler_for(codec)
    for packet in sender.frame():
        assembler.add(packet, 0)
    delta = sender.frame()
    for packet in delta[:-1]:
        assembler.add(packet, 0.03)
    restarted = Sender(codec, first_sequence=100)
    fresh = restarted.frame()
    for packet in fresh:
        packet.ssrc = SSRC + 1
    frames = [f for p in fresh for f in assembler.add(p, 0.06)]
    assert [f.data for f in frames] == [restarted.sent[fresh[0].timestamp]]
    assert assembler.ssrc == SSRC + 1


@dataclasses.dataclass(order=True)
class _InFlight:
    arrives: float
    order: int
    item: Any = dataclasses.field(compare=False)


class Channel:
    """One direction of a call: a fixed delay and random loss."""

    def __init__(self, loss: float, delay: float, seed: int) -> None:
        self._loss, self._delay, self._random = loss, delay, random.Random(seed)
        self._flying: list[_InFlight] = []
        self._order = itertools.count()

    def send(self, now: float, item: Any) -> None:
        if self._random.random() >= self._loss:
            heapq.heappush(self._flying, _InFlight(now + self._delay, next(self._order), item))

    def arrived(self, now: float) -> list[Any]:
        items = []
        while self._flying and self._flying[0].arrives <= now:
            items.append(heapq.heappop(self._flying).item)
        return items


class SimulatedFeedback:
    def __init__(self, channel: Channel, clock: list[float]) -> None:
        self._channel, self._clock = channel, clock

    async def nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        self._channel.send(self._clock[0], ("nack", sequence_numbers))

    async def picture_loss(self, ssrc: int) -> None:
        self._channel.send(self._clock[0], ("pli", None))


async def simulated_call(
    codec: RTCRtpCodecParameters, loss: float, seconds: float, rtt: float = 0.005
) -> tuple[Sender, VideoReceiver, list[AssembledFrame]]:
    """`seconds` of video through `loss` each way, stepped a millisecond at a time."""
    sender, clock = Sender(codec), [0.0]
    delivered: list[AssembledFrame] = []
    forward, back = Channel(loss, rtt / 2, seed=1), Channel(loss, rtt / 2, seed=2)
    receiver = VideoReceiver(
        assembler_for(codec),
        delivered.append,
        SimulatedFeedback(back, clock),
        lambda: rtt,
        clock=lambda: clock[0],
    )
    receiver.assembler.rtt = rtt
    keyframe_asked = False
    for tick in range(int(seconds * 1000) + 500):
        now = clock[0] = tick / 1000
        if tick % (1000 // FPS) == 0 and tick < seconds * 1000:
            for packet in sender.frame(keyframe=keyframe_asked):
                forward.send(now, packet)
            keyframe_asked = False
        for packet in forward.arrived(now):
            receiver.packet(packet)
        await receiver.service(now)
        for kind, item in back.arrived(now):
            if kind == "pli":
                keyframe_asked = True
            else:
                for sequence in item:
                    forward.send(now, sender.history[sequence])
    return sender, receiver, delivered


@pytest.mark.parametrize(("name", "loss"), [("VP8", 0.1), ("VP8", 0.3), ("H264", 0.3)])
async def test_under_loss_every_decoded_frame_is_whole_and_most_frames_get_through(
    name: str, loss: float
) -> None:
    codec = CODECS[name]
    seconds = 10
    sender, receiver, delivered = await simulated_call(codec, loss, seconds)
    assert all(frame.data == sender.sent[frame.timestamp] for frame in delivered)
    pictures = decoded(codec, as_received(delivered))
    lossless = decoded(codec, list(sender.sent.items()))
    assert all(np.array_equal(luma, lossless[ts]) for ts, luma in pictures.items())
    stamps = [stamp for luma in pictures.values() if (stamp := read_stamp(luma)) is not None]
    assert stamps == sorted(set(stamps)), "in order, none twice"
    counts = receiver.assembler.counts
    share = len(delivered) / len(sender.sent)
    assert share > (0.95 if loss <= 0.1 else 0.85), counts
    assert counts["keyframes_requested"] <= seconds / KEYFRAME_REQUEST_SECONDS, counts
    if loss >= 0.3:
        assert counts["keyframes_requested"] > 0 and sender.keyframes > 1, counts


async def test_keyframe_requests_are_rate_limited_whoever_asks() -> None:
    clock = [0.0]
    channel = Channel(0.0, 0.0, seed=0)
    receiver = VideoReceiver(
        assembler_for(CODECS["VP8"]),
        lambda frame: None,
        SimulatedFeedback(channel, clock),
        lambda: None,
        clock=lambda: clock[0],
    )
    for clock[0] in (0.0, 0.1, 0.2, KEYFRAME_REQUEST_SECONDS + 0.01, 0.3):
        await receiver.request_keyframe(SSRC)
    assert [kind for kind, _ in channel.arrived(1.0)] == ["pli", "pli"]


@pytest.mark.slow
async def test_in_a_call_at_30_percent_loss_each_way_every_picture_shown_is_whole(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    """aiortc's own receive path decodes frames with holes: corrupt pictures whose stamps do
    not read (../shared/notes/aiortc.md). Here every decoded picture carries a stamp whose
    check bits hold, with the colour bars where they belong."""
    seconds = 6
    sender, viewer = daemon_config(room_server, "dev-a"), daemon_config(room_server, "dev-b")
    async with running(sender), running(viewer) as bob:
        await eventually(lambda: video_ok(received(bob, "dev-a")), 25)
        (pc,) = bob._backend.peer_connections().values()
        (transceiver,) = [t for t in pc.getTransceivers() if t.kind == "video"][:1]
        receiver = aiortc_hooks.video_receiver_of(transceiver)
        assert receiver is not None
        loss = Loss(0.3, seed=7)
        impair(pc, loss, outbound=True)
        await asyncio.sleep(1)  # frames decoded before the loss began have left the queues
        before = received(bob, "dev-a")["video"]
        await bob.call_stats()
        await asyncio.sleep(seconds)
        after = received(bob, "dev-a")["video"]
        (quality,) = (await bob.call_stats())["participants"]
        counted = ("frames", "stamped_frames", "pattern_frames")
        shown = {key: after[key] - before[key] for key in counted}
        assert shown["frames"] == shown["stamped_frames"] == shown["pattern_frames"], shown
        assert shown["frames"] > 0.6 * 30 * seconds, (shown, quality)
        counts = quality["video_receive"]
        assert counts["nacked"] > 0 and counts["keyframes_requested"] <= 4 * seconds, counts
        assert abs(counts["frames"] - shown["frames"]) < 30, (counts, shown)
        assert 0.25 < loss.dropped / (loss.dropped + loss.passed) < 0.35
