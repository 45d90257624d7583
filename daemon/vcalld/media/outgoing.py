"""This device's outgoing audio and video: sources, mute, and the fan-out to every peer."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, Packet, VideoFrame
from av.frame import Frame

from vcalld.call.events import LocalMedia
from vcalld.config import VcalldConfig
from vcalld.config.models import BitrateSection
from vcalld.media.encoding import SharedVideoEncoder
from vcalld.media.fanout import Fanout
from vcalld.media.frames import black_video, silent_audio, timed_like
from vcalld.media.h264 import ParameterSets
from vcalld.media.keyframes import KeyframeRequests
from vcalld.media.processors.chain import ChainSpec, Disabled, ProcessorChain
from vcalld.media.processors.stages import OutgoingStage
from vcalld.media.sources.base import (
    EncodedVideoSource,
    KeyframeSource,
    Media,
    MediaSource,
    ReportProblem,
    VideoSource,
    load_source,
)
from vcalld.media.timeline import VideoTimeline
from vcalld.media.video_codecs import TrackEncoding, bitrates_for

AUDIO_SLOTS = 5  # 100 ms of 20 ms frames


class OutgoingMedia:
    def __init__(
        self,
        config: VcalldConfig,
        video_source: VideoSource | None = None,
        processor_disabled: Callable[[str, Disabled], None] | None = None,
    ) -> None:
        """`video_source` replaces the configured one (a test's camera on a fake device);
        `processor_disabled(chain, record)` hears of a processor taken out of a chain."""
        self.video_source: VideoSource | None = (
            (video_source or load_source(config.video.source, config.video))
            if config.video.enabled
            else None
        )
        self.audio_source: MediaSource | None = (
            load_source(config.audio.source, config.audio) if config.audio.enabled else None
        )
        self.encodings = track_encodings(config)
        # Frames, for the self view and for the peers; with encode_once the peers take the
        # shared encoder's packets from `_encoded` instead. A source that encodes its own
        # video needs no encoder of ours.
        self._video = Fanout("video", depth=1)
        self._encoder: SharedVideoEncoder | None = None
        source = self.video_source
        if config.video.encode_once and source and not isinstance(source, EncodedVideoSource):
            self._encoded = Fanout("video", depth=1)
            self._encoder = SharedVideoEncoder(self._encoded.publish, self.encodings["video"])
        # A source's own H.264 gets the parameter sets before each IDR, and its keyframes
        # (when it can make them) on the peers' requests.
        self._parameter_sets: ParameterSets | None = None
        if isinstance(source, EncodedVideoSource) and source.codec.lower() == "video/h264":
            self._parameter_sets = ParameterSets()
        self.source_keyframes: KeyframeRequests | None = None
        if isinstance(source, EncodedVideoSource) and isinstance(source, KeyframeSource):
            self.source_keyframes = KeyframeRequests(source.request_keyframe)
        self.screen_track = config.screen_share.second_track and self.video_source is not None
        self._screen = Fanout("video", depth=1)  # the second track's, when it is one
        self._screen_timeline = VideoTimeline()
        self._audio = Fanout("audio", depth=AUDIO_SLOTS)
        self.audio_muted = False
        self.video_muted = False
        # The screen's frames go out; in the camera's place the camera's are dropped.
        self.sharing_screen = False
        self._video_on = _Switch(config.video.send_at_start and self.video_source is not None)
        self._timeline = VideoTimeline()
        # Added to the outgoing audio after mute and processing, which are the microphone's.
        self.audio_mix: Callable[[AudioFrame], AudioFrame] | None = None
        disabled = processor_disabled or (lambda chain, record: None)
        self.chains = {
            "video": ChainSpec(config.processors.outgoing_video),
            "audio": ChainSpec(config.processors.outgoing_audio),
        }
        self._stages = {
            kind: OutgoingStage(
                ProcessorChain(self.chains[kind]),
                send,
                depth,
                functools.partial(disabled, f"outgoing_{kind}"),
            )
            for kind, send, depth in (
                ("video", self._deliver_video, 1),
                ("audio", self._send_audio, AUDIO_SLOTS),
            )
        }

    def runners(
        self, report: Callable[[str, str | None], None]
    ) -> dict[str, Coroutine[Any, Any, None]]:
        """The source loops, by task name, for the daemon to own; `report(kind, problem)`
        hears why a source cannot deliver."""
        runners = {}
        if self.video_source is not None:
            runners["video-source"] = self._video_while_on(
                self.video_source, functools.partial(report, "video")
            )
        if self.audio_source is not None:
            runners["audio-source"] = self.audio_source.run(
                self._publish_audio, functools.partial(report, "audio")
            )
        for kind, stage in self._stages.items():
            runners[f"{kind}-processing"] = stage.run()
        if self._encoder is not None:
            runners["video-encoder"] = self._encoder.run()
        return runners

    def local_media(self) -> LocalMedia:
        return LocalMedia(
            audio=self._audio.subscribe if self.audio_source is not None else None,
            video=self._peer_video() if self.video_source is not None else None,
            sends=self._sends,
            video_codec=self._video_codec(),
            video_profile=self._video_profile,
            screen=self._screen.subscribe if self.screen_track else None,
            video_sender=self._video_sender(),
            video_encoding=self.encodings,
        )

    def preview(self) -> Callable[[], MediaStreamTrack] | None:
        """The outgoing video as frames (the self view), also when peers get packets."""
        return self._video.subscribe if self.video_source is not None else None

    def _peer_video(self) -> Callable[[], MediaStreamTrack]:
        return self._encoded.subscribe if self._encoder is not None else self._video.subscribe

    def _video_codec(self) -> str | None:
        """The one codec the peers' video goes out in, when it is encoded before them."""
        if self._encoder is not None:
            return self._encoder.codec
        if isinstance(self.video_source, EncodedVideoSource):
            return self.video_source.codec
        return None

    def _video_profile(self) -> str | None:
        """A source's H.264 profile-level-id, once its first SPS has gone out."""
        return self._parameter_sets.profile_level_id if self._parameter_sets else None

    def _video_sender(self) -> Callable[[RTCRtpSender], None] | None:
        if self._encoder is not None:
            return self._encoder.add_sender
        if self.source_keyframes is not None:
            return self.source_keyframes.add_sender
        return None

    def _sends(self, kind: str) -> bool:
        if kind == "screen":
            return self.sharing_screen and self.screen_track
        return kind != "video" or self.sending_video

    @property
    def sending_video(self) -> bool:
        """A screen shared in the camera's place goes out in a voice-only call too (the
        camera stays off)."""
        return self.video_enabled or (self.sharing_screen and not self.screen_track)

    @property
    def sending(self) -> tuple[bool, bool]:
        """Whether the camera's track and the screen's send: a change is renegotiated."""
        return self.sending_video, self._sends("screen")

    @property
    def video_enabled(self) -> bool:
        return self._video_on.value

    def set_video(self, on: bool) -> None:
        """Video sent or not; off, the source is stopped (the camera closed, its light out),
        the peers are told by renegotiation (the call backend's part)."""
        if on and self.video_source is None:
            raise ValueError("no video source")
        self._video_on.set(on)

    def share_screen(self, on: bool) -> None:
        """The screen's frames (`publish_screen`) go out."""
        if on and self.screen_track:
            self._screen_timeline.new_segment()
        self.sharing_screen = on

    async def _video_while_on(self, source: VideoSource, report: ReportProblem) -> None:
        while True:
            await self._video_on.wait_for(True)
            self._timeline.new_segment()
            async with asyncio.TaskGroup() as group:
                capture = group.create_task(source.run(self._publish_video, report))
                await self._video_on.wait_for(False)
                capture.cancel()
            report(None)  # a camera that is not wanted is missed by no one

    def publish_screen(self, frame: Frame) -> None:
        """A frame of the shared screen, sent on a track of its own or in the camera's place;
        mute blacks it out as it does the camera."""
        if not self.sharing_screen:
            return
        if not self.screen_track:
            self._send_video(self._timeline.stamp("screen", frame))
            return
        self._screen.publish(self._screen_timeline.stamp("screen", self._unless_muted(frame)))

    def _publish_video(self, frame: Media) -> None:
        if not self.sharing_screen or self.screen_track:
            self._send_video(self._timeline.stamp("camera", frame))

    def _send_video(self, frame: Media) -> None:
        if isinstance(frame, Packet):  # encoded by the source: as it is, or not at all
            if not self.video_muted:
                self._video.publish(self._with_parameter_sets(frame))
            return
        frame = self._unless_muted(frame)
        stage = self._stages["video"]
        if stage.needed:
            stage.submit(frame)
        else:
            self._deliver_video(frame)

    def _with_parameter_sets(self, packet: Packet[Any]) -> Packet[Any]:
        if self._parameter_sets is None:
            return packet
        access_unit = bytes(packet)
        completed = self._parameter_sets.complete(access_unit)
        if completed is access_unit:
            return packet
        whole = Packet(completed)
        whole.pts, whole.dts, whole.time_base = packet.pts, packet.dts, packet.time_base
        whole.is_keyframe = packet.is_keyframe
        return whole

    def _unless_muted(self, frame: Frame) -> Frame:
        return _black_like(frame) if self.video_muted and isinstance(frame, VideoFrame) else frame

    def _deliver_video(self, frame: Frame) -> None:
        """Processed: to the self view, and to the peers or their shared encoder."""
        self._video.publish(frame)
        if self._encoder is not None and isinstance(frame, VideoFrame):
            self._encoder.submit(frame)

    def _publish_audio(self, frame: Frame) -> None:
        if self.audio_muted and isinstance(frame, AudioFrame):
            frame = _silence_like(frame)
        stage = self._stages["audio"]
        if stage.needed:
            stage.submit(frame)
        else:
            self._send_audio(frame)

    def _send_audio(self, frame: Frame) -> None:
        if self.audio_mix is not None and isinstance(frame, AudioFrame):
            frame = self.audio_mix(frame)
        self._audio.publish(frame)


def track_encodings(config: VcalldConfig) -> dict[str, TrackEncoding]:
    """The bitrates and rate of the camera's track ("video") and the screen's."""
    video, screen = config.video, config.screen_share

    def encoding(section: BitrateSection, width: int, height: int, fps: int) -> TrackEncoding:
        bitrates = bitrates_for(
            width,
            height,
            fps,
            minimum_kbps=section.min_bitrate_kbps,
            start_kbps=section.start_bitrate_kbps,
            maximum_kbps=section.max_bitrate_kbps,
        )
        return TrackEncoding(bitrates, fps)

    return {
        "video": encoding(video, video.width, video.height, video.fps),
        # A screen of unknown size is taken for full HD.
        "screen": encoding(screen, screen.width or 1920, screen.height or 1080, screen.fps),
    }


class _Switch:
    """An on/off value that can be waited for, either way."""

    def __init__(self, value: bool) -> None:
        self._on, self._off = asyncio.Event(), asyncio.Event()
        self.set(value)

    @property
    def value(self) -> bool:
        return self._on.is_set()

    def set(self, value: bool) -> None:
        becomes, leaves = (self._on, self._off) if value else (self._off, self._on)
        becomes.set()
        leaves.clear()

    async def wait_for(self, value: bool) -> None:
        await (self._on if value else self._off).wait()


def _black_like(frame: VideoFrame) -> VideoFrame:
    """Muted video is black, like a browser's disabled track."""
    return timed_like(black_video(frame.width, frame.height), frame)


def _silence_like(frame: AudioFrame) -> AudioFrame:
    silent = silent_audio(frame.samples, frame.layout.name, frame.sample_rate)
    return timed_like(silent, frame)
