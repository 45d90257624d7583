"""Every change vcalld makes to aiortc's and aioice's behaviour, in this one module.

Written against the pinned aiortc 1.16.0 and aioice 0.13.0 and refused with any other
version (`UpstreamMismatchError`), because it reaches into their private state:

- the audio codec table: RED over Opus (RFC 2198) offered first, Opus with in-band FEC;
- codec negotiation: RED's format line names the negotiated Opus payload type, and RED
  goes first so both ends send it;
- per connection: our VoiceEncoder in place of the sender's lazily made Opus encoder, with
  the frame's audio level computed in numpy beside it, the sender's receiver reports
  forwarded to it, and the receiver's audio jitter buffer replaced by a feed into our
  AudioReceiver;
- per connection, for video received: the jitter buffer and NACK generator replaced by our
  VideoReceiver (whole frames on the marker bit, NACKs retried, holes given up after two
  round trips, keyframe requests rate-limited, aiortc's own included);
- ICE consent freshness that survives heavy loss, in place of aioice's (below), which also
  measures the round trip for connections that send no media of their own;
- H.264 in the Main and High profiles besides aiortc's baseline ones, so that a source's own
  H.264 can be negotiated in the profile it is in;
- one video codec only, for a source's pre-encoded packets (H.264 in the stream's profile),
  also in an answer, whose codecs aiortc negotiates before the transceiver can be given
  preferences;
- for video encoded once for every peer: a sender's keyframe requests passed on, and the
  bandwidth estimate aiortc gives the sender's own (then idle) encoder read back;
- per connection, for video sent: our VideoEncoder in place of the sender's lazily made
  VP8 or H.264 encoder, packetising with aiortc's own packetisers; and the bitrates we
  want browsers to send us in the video codecs' format lines (x-google-*-bitrate).

tests/test_audio_engine.py checks the audio ones in real calls, tests/test_video_receiver.py,
tests/test_encoded_source.py and tests/test_encode_once.py the video ones, so an upgrade that
moves any of this fails there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

import aioice.ice
import aiortc.clock
import aiortc.rtcpeerconnection
import numpy as np
from aioice import stun
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import CODECS
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCEncodedFrame
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket, RtpPacket
from aiortc.sdp import H264Profile, parse_h264_profile_level_id
from av import AudioFrame

from vcalld.call.audio.receiver import AudioReceiver
from vcalld.call.audio.sender import VoiceEncoder, VoiceSettings
from vcalld.call.video.assembler import AssembledFrame, FrameAssembler
from vcalld.call.video.payloads import PayloadFormat, payload_format
from vcalld.call.video.receiver import VideoReceiver
from vcalld.call.video.sender import ENCODERS, VideoEncoder
from vcalld.media.video_codecs import Bitrates, TrackEncoding

log = logging.getLogger(__name__)
PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0"}
RED_PAYLOAD_TYPE = 63  # Chrome's; aiortc's own dynamic types start at 96
MAX_QUEUED_FRAMES = 25  # 0.5 s: a consumer that stops reading must not grow memory
# The private attributes reached into, by their mangled names.
SENDER_ENCODER = "_RTCRtpSender__encoder"
RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
RECEIVER_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
RECEIVER_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
SENDER_RTT = "_RTCRtpSender__rtt"

_upstream_find_common_codecs = aiortc.rtcpeerconnection.find_common_codecs
_attached: WeakSet[RTCRtpTransceiver] = WeakSet()
_ice_round_trips: WeakKeyDictionary[aioice.ice.Connection, float] = WeakKeyDictionary()


class UpstreamMismatchError(RuntimeError):
    """aiortc or aioice is not the version these hooks were written and tested against."""


def install(settings: VoiceSettings, video: Bitrates | None = None) -> None:
    """Process-wide changes; call once before the first peer connection (idempotent).
    `video`: what browsers are asked to send us (their start, floor and ceiling)."""
    for package, version in PINNED.items():
        found = importlib.metadata.version(package)
        if found != version:
            raise UpstreamMismatchError(
                f"vcalld's aiortc hooks need {package} {version}, found {found}; "
                "re-check vcalld/call/aiortc_hooks.py against it before changing the pin"
            )
    audio = [codec for codec in CODECS["audio"] if codec.mimeType.lower() != "audio/red"]
    opus = next(codec for codec in audio if codec.mimeType.lower() == "audio/opus")
    opus.parameters = {"minptime": 10, "useinbandfec": 1}
    if settings.channels == 2:
        opus.parameters |= {"stereo": 1, "sprop-stereo": 1}
    if settings.max_redundancy:
        audio.insert(0, _red_for(opus))
    CODECS["audio"][:] = audio
    _add_h264_profiles(CODECS["video"])
    if video is not None:
        _ask_for_bitrates(CODECS["video"], video)
    aiortc.rtcpeerconnection.find_common_codecs = _find_common_codecs
    aioice.ice.Connection.query_consent = keep_consent  # type: ignore[method-assign,assignment]


def attach(
    pc: RTCPeerConnection, settings: VoiceSettings, video_start_bitrate: int | None = None
) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """Puts our audio engine and video receivers into `pc`'s negotiated transceivers (call
    after every completed offer/answer; transceivers already done are skipped). Returns
    their loops, which the caller starts and cancels when the connection closes.
    `video_start_bitrate` (bit/s) is where the estimate we send the far end (REMB) starts."""
    loops: list[Callable[[], Coroutine[Any, Any, None]]] = []
    for transceiver in pc.getTransceivers():
        if transceiver in _attached:
            continue
        if transceiver.kind == "video":
            if transceiver.currentDirection in ("sendrecv", "recvonly"):
                _attached.add(transceiver)
                loops.append(_attach_video_receiver(pc, transceiver, video_start_bitrate))
            continue
        types = _payload_types(transceiver._codecs)
        if types is None:
            continue  # no Opus (a G.711-only peer): aiortc's own path stays
        _attached.add(transceiver)
        opus_type, red_type = types
        if transceiver.sender.track is not None:
            _attach_sender(transceiver, settings, opus_type, red_type)
        if transceiver.currentDirection in ("sendrecv", "recvonly"):
            loops.append(_attach_receiver(transceiver, opus_type, red_type))
    return loops


class CodecRefusedError(ValueError):
    """The far end does not take the one codec a pre-encoded source sends."""


def only_codec(
    transceiver: RTCRtpTransceiver, mime: str, profile_level_id: str | None = None
) -> None:
    """`transceiver` offers and answers `mime` alone (and its retransmissions): packets that
    are already encoded can go out in no other; for H.264, in the profile of the stream's
    `profile_level_id` alone, when it is known. Call before an offer, or between the remote
    offer and our answer."""
    kind = transceiver.kind

    def sent(codec: Any) -> bool:
        if codec.mimeType.lower() != mime.lower():
            return False
        return profile_level_id is None or _same_h264_profile(codec, profile_level_id)

    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences(
        [c for c in capabilities if sent(c) or c.mimeType.lower() == f"{kind}/rtx"]
    )
    if transceiver._codecs:  # negotiated from an offer already: keep only ours
        ours = [c for c in transceiver._codecs if sent(c)]
        if not ours:
            stream = f" {profile_level_id}" if profile_level_id else ""
            raise CodecRefusedError(
                f"the far end offers no {mime}{stream}, which our video source sends"
            )
        types = {codec.payloadType for codec in ours}
        retransmission = [
            c
            for c in transceiver._codecs
            if c.mimeType.lower() == f"{kind}/rtx" and int(str(c.parameters.get("apt"))) in types
        ]
        transceiver._codecs = ours + retransmission


def on_keyframe_request(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """A PLI or FIR the far end sends `sender` reaches `request` too."""
    own = sender._send_keyframe

    def both() -> None:
        own()
        request()

    sender._send_keyframe = both  # type: ignore[method-assign]


def estimated_bitrate(sender: RTCRtpSender) -> int | None:
    """What the far end's REMB last said `sender` may send (bit/s), as aiortc hands it to
    the sender's encoder; None before the sender has one."""
    encoder = getattr(sender, SENDER_ENCODER, None)
    bitrate = getattr(encoder, "target_bitrate", None)
    return bitrate if isinstance(bitrate, int) else None


def video_encoder_used(transceiver: RTCRtpTransceiver) -> bool:
    """Whether the sender has encoded a frame itself (packets are only packetised)."""
    encoder = getattr(transceiver.sender, SENDER_ENCODER, None)
    if isinstance(encoder, VideoEncoder):
        return encoder.encoded > 0
    return getattr(encoder, "codec", None) is not None


def video_encoder_of(transceiver: RTCRtpTransceiver) -> VideoEncoder | None:
    encoder = getattr(transceiver.sender, SENDER_ENCODER, None)
    return encoder if isinstance(encoder, VideoEncoder) else None


def receiver_of(transceiver: RTCRtpTransceiver) -> AudioReceiver | None:
    """The AudioReceiver playing `transceiver`'s audio, for statistics."""
    feed = getattr(transceiver.receiver, RECEIVER_JITTER_BUFFER, None)
    return feed.receiver if isinstance(feed, _PlayoutFeed) else None


def video_receiver_of(transceiver: RTCRtpTransceiver) -> VideoReceiver | None:
    feed = getattr(transceiver.receiver, RECEIVER_JITTER_BUFFER, None)
    return feed.receiver if isinstance(feed, _VideoFeed) else None


def encoder_of(transceiver: RTCRtpTransceiver) -> VoiceEncoder | None:
    encoder = getattr(transceiver.sender, SENDER_ENCODER, None)
    return encoder if isinstance(encoder, VoiceEncoder) else None


def _red_for(opus: RTCRtpCodecParameters) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType="audio/red",
        clockRate=opus.clockRate,
        channels=opus.channels,
        payloadType=RED_PAYLOAD_TYPE,
        parameters={f"{opus.payloadType}/{opus.payloadType}": None},
    )


def _add_h264_profiles(video: list[RTCRtpCodecParameters]) -> None:
    """Main, Constrained High and High H.264 (level 3.1, what we take: the level is each
    direction's own), each with its retransmission type, after aiortc's own codecs."""
    known = {str(c.parameters.get("profile-level-id")) for c in video}
    payload_type = max(c.payloadType or 0 for c in video) + 1
    for profile_level_id in ("4d001f", "640c1f", "64001f"):
        if profile_level_id in known:
            continue  # installed already
        base = next(c for c in video if c.mimeType.lower() == "video/h264")
        video += [
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=base.clockRate,
                payloadType=payload_type,
                rtcpFeedback=list(base.rtcpFeedback),
                parameters=base.parameters | {"profile-level-id": profile_level_id},
            ),
            RTCRtpCodecParameters(
                mimeType="video/rtx",
                clockRate=base.clockRate,
                payloadType=payload_type + 1,
                parameters={"apt": payload_type},
            ),
        ]
        payload_type += 2


def _ask_for_bitrates(video: list[RTCRtpCodecParameters], bitrates: Bitrates) -> None:
    """libwebrtc reads these from the far end's format line (kbit/s): without a start, a
    browser starts at 300 kbit/s and takes tens of seconds to reach 720p."""
    for codec in video:
        if codec.mimeType.lower() in ENCODERS:
            codec.parameters |= {
                "x-google-start-bitrate": bitrates.start // 1000,
                "x-google-min-bitrate": bitrates.minimum // 1000,
                "x-google-max-bitrate": bitrates.maximum // 1000,
            }


def use_video_encoder(transceiver: RTCRtpTransceiver, encoding: TrackEncoding) -> None:
    """Our VideoEncoder in `transceiver`'s sender, if VP8 or H.264 was negotiated; call
    before its first frame (a sender that has made its own encoder keeps it)."""
    sender = transceiver.sender
    _require(sender, SENDER_ENCODER)
    if getattr(sender, SENDER_ENCODER) is not None or not transceiver._codecs:
        return
    mime_type = transceiver._codecs[0].mimeType
    if mime_type.lower() in ENCODERS:
        encoder = VideoEncoder(mime_type, encoding, _packetizer(mime_type))
        setattr(sender, SENDER_ENCODER, encoder)


def _packetizer(mime_type: str) -> Callable[[bytes], list[bytes]]:
    """aiortc's RTP payloads for one access unit; VP8's carry a running picture id."""
    if mime_type.lower() != "video/vp8":
        return lambda data: H264Encoder._packetize(H264Encoder._split_bitstream(data))
    vp8 = Vp8Encoder()

    def vp8_payloads(data: bytes) -> list[bytes]:
        payloads = Vp8Encoder._packetize(data, vp8.picture_id)
        vp8.picture_id = (vp8.picture_id + 1) % (1 << 15)
        return payloads

    return vp8_payloads


def _same_h264_profile(codec: Any, profile_level_id: str) -> bool:
    def profile(value: str) -> H264Profile | None:
        try:
            return parse_h264_profile_level_id(value)[0]
        except ValueError:
            return None

    theirs = profile(str(codec.parameters.get("profile-level-id", "42e01f")))
    return theirs is not None and theirs == profile(profile_level_id)


def _find_common_codecs(
    local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """aiortc keeps our RED format line (our Opus type) with the remote's payload types,
    and the remote's order, in which Chrome puts Opus before RED."""
    common = _upstream_find_common_codecs(local_codecs, remote_codecs)
    red = next((codec for codec in common if codec.mimeType.lower() == "audio/red"), None)
    if red is None:
        return common
    common.remove(red)
    opus = next((codec for codec in common if codec.mimeType.lower() == "audio/opus"), None)
    if opus is None:
        return common  # RED over a codec we do not send: leave it out
    red.parameters = {f"{opus.payloadType}/{opus.payloadType}": None}
    return [red, *common]


def _payload_types(codecs: list[RTCRtpCodecParameters]) -> tuple[int, int | None] | None:
    types = {codec.mimeType.lower(): codec.payloadType for codec in codecs}
    opus_type = types.get("audio/opus")
    if opus_type is None:
        return None
    return opus_type, types.get("audio/red")


def _attach_sender(
    transceiver: RTCRtpTransceiver, settings: VoiceSettings, opus_type: int, red_type: int | None
) -> None:
    sender = transceiver.sender
    sends_red = transceiver._codecs[0].payloadType == red_type
    if transceiver._codecs[0].payloadType not in (opus_type, red_type):
        return
    encoder = VoiceEncoder(settings, opus_type=opus_type, red=sends_red)
    _require(sender, SENDER_ENCODER)
    setattr(sender, SENDER_ENCODER, encoder)
    _encode_with_level(sender, encoder)
    upstream_handler = sender._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        await upstream_handler(packet)
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    encoder.report_loss(report.fraction_lost / 256)

    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def _encode_with_level(sender: RTCRtpSender, encoder: VoiceEncoder) -> None:
    """aiortc computes each frame's audio level (RFC 6464) in a Python loop over its samples
    on the event loop (79 us a 20 ms frame on the host, milliseconds on a slow CPU). Here it
    is computed in numpy (16 us), in the thread that encodes the frame: a native encoder is
    the larger cost on a slow CPU (3.4 ms a frame on the emulated test bed, where encoding on
    the loop made its lag a second), and it runs there beside the loop."""
    _require(sender, "_next_encoded_frame")
    _require(sender, "_enabled")
    loop = asyncio.get_running_loop()

    async def next_encoded_frame(codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        track = sender.track
        assert track is not None, "aiortc sends only while the sender has a track"
        frame = await track.recv()
        if not sender._enabled:
            return None  # read all the same, as aiortc does, so nothing piles up
        assert isinstance(frame, AudioFrame)
        payloads, timestamp, level = await loop.run_in_executor(None, encode, frame)
        return RTCEncodedFrame(payloads, timestamp, level) if payloads else None

    def encode(frame: AudioFrame) -> tuple[list[bytes], int, int]:
        return (*encoder.encode(frame), audio_level_dbov(frame))

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]


def audio_level_dbov(frame: AudioFrame) -> int:
    """The RFC 6465 level (-127 to 0 dBov) that aiortc's compute_audio_level_dbov gives a
    signed 16-bit frame, of a frame in any sample format."""
    samples = frame.to_ndarray()
    full_scale = 32767 if samples.dtype == np.int16 else 1.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) / full_scale
    return round(max(-127.0, min(0.0, 20 * np.log10(rms)))) if rms > 0 else -127


def _attach_receiver(
    transceiver: RTCRtpTransceiver, opus_type: int, red_type: int | None
) -> Callable[[], Coroutine[Any, Any, None]]:
    rtp_receiver = transceiver.receiver
    _require(rtp_receiver, RECEIVER_JITTER_BUFFER)
    track = rtp_receiver._track
    assert track is not None, "aiortc makes the remote track with the receiver"
    queue: asyncio.Queue[Any] = track._queue

    def deliver(frame: Any) -> None:
        while queue.qsize() >= MAX_QUEUED_FRAMES:
            queue.get_nowait()
        queue.put_nowait(frame)

    receiver = AudioReceiver(deliver)
    setattr(rtp_receiver, RECEIVER_JITTER_BUFFER, _PlayoutFeed(receiver, opus_type, red_type))
    return receiver.run


class _PlayoutFeed:
    """Stands in for aiortc's audio JitterBuffer: every packet goes to our AudioReceiver,
    and no frame ever goes to aiortc's decoder thread (which stays only to end the track)."""

    def __init__(self, receiver: AudioReceiver, opus_type: int, red_type: int | None) -> None:
        self.receiver = receiver
        self._opus_type = opus_type
        self._red_type = red_type

    def add(self, packet: Any) -> tuple[bool, None]:
        if packet.payload_type in (self._opus_type, self._red_type):
            self.receiver.packet(
                packet.payload,
                packet.timestamp,
                opus_type=self._opus_type,
                is_red=packet.payload_type == self._red_type,
            )
        return False, None


def _attach_video_receiver(
    pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, start_bitrate: int | None
) -> Callable[[], Coroutine[Any, Any, None]]:
    rtp_receiver = transceiver.receiver
    if start_bitrate is not None:
        start_estimate_at(rtp_receiver, start_bitrate)
    for attribute in (
        RECEIVER_JITTER_BUFFER,
        RECEIVER_NACK_GENERATOR,
        RECEIVER_DECODER_QUEUE,
        RECEIVER_CODECS,
        RECEIVER_TIMESTAMP_MAPPER,
    ):
        _require(rtp_receiver, attribute)
    codecs: dict[int, RTCRtpCodecParameters] = getattr(rtp_receiver, RECEIVER_CODECS)
    decoder_queue = getattr(rtp_receiver, RECEIVER_DECODER_QUEUE)
    timestamps = getattr(rtp_receiver, RECEIVER_TIMESTAMP_MAPPER)

    def decode(frame: AssembledFrame) -> None:
        codec = codecs.get(frame.payload_type)
        if codec is not None:
            decoder_queue.put((codec, JitterFrame(frame.data, timestamps.map(frame.timestamp))))

    def format_of(payload_type: int) -> PayloadFormat | None:
        codec = codecs.get(payload_type)
        return payload_format(codec.mimeType) if codec is not None else None

    assembler = FrameAssembler(format_of)
    receiver = VideoReceiver(
        assembler, decode, _RtcpFeedback(rtp_receiver), functools.partial(round_trip_of, pc)
    )
    setattr(rtp_receiver, RECEIVER_JITTER_BUFFER, _VideoFeed(receiver))
    setattr(rtp_receiver, RECEIVER_NACK_GENERATOR, None)  # the VideoReceiver sends them
    rtp_receiver._send_rtcp_pli = receiver.request_keyframe  # type: ignore[method-assign,assignment]
    return receiver.run


def start_estimate_at(rtp_receiver: Any, bitrate: int) -> None:
    """aiortc's receive-side estimate (sent as REMB) starts, after 3 s, at what arrived: a
    browser sending a simple picture at 400 kbit/s is told 400 and, as the estimate then
    grows by ~8% a second, its target took 8 s to get back from 380 to 570 kbit/s. libwebrtc
    starts the estimate at the start bitrate instead; so does this."""
    _require(rtp_receiver, RECEIVER_BITRATE_ESTIMATOR)
    estimator = getattr(rtp_receiver, RECEIVER_BITRATE_ESTIMATOR)
    estimator.rate_control.set_estimate(bitrate, aiortc.clock.current_ms())


class _VideoFeed:
    """Stands in for aiortc's video JitterBuffer: every packet goes to our VideoReceiver,
    which puts whole frames on aiortc's decoder queue itself."""

    def __init__(self, receiver: VideoReceiver) -> None:
        self.receiver = receiver

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.receiver.packet(packet)
        return False, None


class _RtcpFeedback:
    """A VideoReceiver's NACKs and PLIs, through the aiortc receiver's RTCP senders."""

    def __init__(self, rtp_receiver: Any) -> None:
        self._send_nack = rtp_receiver._send_rtcp_nack
        self._send_pli = rtp_receiver._send_rtcp_pli  # before request_keyframe wraps it

    async def nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        # aiortc packs a NACK's list assuming it ascends: one message per side of a wrap
        run: list[int] = []
        for sequence in sequence_numbers:
            if run and sequence < run[-1]:
                await self._send_nack(ssrc, run)
                run = []
            run.append(sequence)
        if run:
            await self._send_nack(ssrc, run)

    async def picture_loss(self, ssrc: int) -> None:
        await self._send_pli(ssrc)


def round_trip_of(pc: RTCPeerConnection) -> float | None:
    """The connection's round trip (seconds): from RTCP when it sends media, else from the
    ICE consent checks (every ~5 s), so a receive-only connection has one too."""
    for transceiver in pc.getTransceivers():
        rtt = getattr(transceiver.sender, SENDER_RTT, None)
        if isinstance(rtt, float) and rtt > 0:
            return rtt
    for transceiver in pc.getTransceivers():
        with contextlib.suppress(AttributeError):
            return _ice_round_trips.get(transceiver.receiver.transport.transport._connection)
    return None


def _require(target: object, attribute: str) -> None:
    if not hasattr(target, attribute):
        raise UpstreamMismatchError(
            f"{type(target).__name__} has no {attribute}: aiortc changed under vcalld's hooks"
        )


# -- ICE consent freshness (RFC 7675)
#
# Consent that holds through heavy loss while media still flow.
#
# aioice sends one unretransmitted check every ~5 s and gives up after six misses in a row,
# so at 70% loss each way (9% of checks answered) it ended calls after ~30 s. RFC 7675 only
# requires that consent expire 30 s after the last answered check, and allows retransmitting
# checks. Here a check goes every ~5 s and, until one is answered, another try starts every
# 250 ms: 120 tries per 30 s, so at 70% loss both ways 30 s pass unanswered with
# p = 0.91^120 (1e-5) instead of p = 0.91^6 (57%). Each try is sent again after 0.5 and 1.5 s
# and is answered by a response to any of its sends until 3.5 s: an overloaded device (the
# emulated test bed's two daemons) answers late, not never, and aioice's single 500 ms wait
# had ended such calls 30 s after they connected while their media flowed. The tries cost
# ~100 bytes a send, and only while checks go unanswered.

CONSENT_CHECK_SECONDS = 5.0
CONSENT_TRY_SECONDS = 0.25
CONSENT_EXPIRY_SECONDS = 30.0
CONSENT_RETRANSMISSIONS = 2  # aioice doubles its 0.5 s wait at each: 3.5 s for an answer


async def keep_consent(connection: Any) -> None:
    """Replaces aioice's `Connection.query_consent`; closes `connection` when consent expires."""
    assert connection.remote_password is not None
    key = connection.remote_password.encode("utf8")
    last_answer = time.monotonic()
    while True:
        await asyncio.sleep(CONSENT_CHECK_SECONDS * (0.8 + 0.4 * random.random()))
        if not await _answered_before(connection, key, last_answer + CONSENT_EXPIRY_SECONDS):
            log.warning("ICE consent expired: no check answered in %.0f s", CONSENT_EXPIRY_SECONDS)
            connection._query_consent_task = None
            await connection.close()
            return
        last_answer = time.monotonic()


async def _answered_before(connection: Any, key: bytes, deadline: float) -> bool:
    """Tries, overlapping, until one is answered (True) or `deadline` passes (False)."""
    answered = asyncio.Event()
    async with asyncio.TaskGroup() as tries:
        started = []
        while not answered.is_set() and time.monotonic() < deadline:
            started.append(tries.create_task(_try(connection, key, answered)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), CONSENT_TRY_SECONDS)
        for attempt in started:
            attempt.cancel()  # one answer is enough: the others stop sending
    return answered.is_set()


async def _try(connection: Any, key: bytes, answered: asyncio.Event) -> None:
    """One request on every nominated pair."""
    for pair in list(connection._nominated.values()):
        request = connection.build_request(pair, nominate=False)
        sent = time.monotonic()
        try:
            await pair.protocol.request(
                request,
                pair.remote_addr,
                integrity_key=key,
                retransmissions=CONSENT_RETRANSMISSIONS,
            )
        except stun.TransactionError:
            continue
        except (OSError, ConnectionError) as error:
            log.debug("consent check not sent: %s", error)
            continue
        _ice_round_trips[connection] = time.monotonic() - sent
        answered.set()
        return
