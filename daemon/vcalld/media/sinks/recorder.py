"""The recorder: each remote participant's audio and video to a Matroska file of their own,
or, in composite mode, the whole call to one (media/sinks/composite.py).

What arrives is decoded already, so it is encoded again: H.264 (libx264, ultrafast) at the
size of the participant's first picture, and Opus. A participant's tracks start within
moments of each other; the file is opened once both have sent a frame, or a second after the
first did (a voice-only participant), and a track that comes later still is not recorded.
Timestamps come from arrival, so sound and picture stay together across losses and the
senders' clocks. Writing happens in a thread of its own behind a bounded queue: a disk that
is slow costs frames, a disk that is full ends that recording, and the call never notices.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.audio.fifo import AudioFifo
from av.audio.resampler import AudioResampler
from av.frame import Frame

from vcalld.config import VcalldConfig
from vcalld.media.frames import silent_audio
from vcalld.media.own_thread import run_in_own_thread
from vcalld.media.sinks.composite import CompositeRecording
from vcalld.media.sinks.recording_stats import RecordingStats, described
from vcalld.state import DeviceState

log = logging.getLogger(__name__)

START_GRACE_SECONDS = 1.0  # for the participant's other track before the file is opened
QUEUED_FRAMES = 120  # about 2 s of audio and video waiting for a slow disk
POLL_SECONDS = 0.1
CLOSE_SECONDS = 5.0  # to encode what is queued and write the file's index
OPUS_FRAME = 960  # 20 ms at 48 kHz
MILLISECONDS = Fraction(1, 1000)


@dataclass
class _Recording:
    """One participant's file: frames from the loop, written by a thread."""

    stats: RecordingStats
    frames: queue.Queue[tuple[str, Frame, float]] = field(
        default_factory=lambda: queue.Queue(QUEUED_FRAMES)
    )
    done: threading.Event = field(default_factory=threading.Event)  # no more frames come
    writer: asyncio.Task[None] | None = None

    def offer(self, kind: str, frame: Frame) -> None:
        try:
            self.frames.put_nowait((kind, frame, time.monotonic()))
        except queue.Full:
            self.stats.dropped += 1


COMPOSITE = "@composite"  # the composite's key among the participants' recordings


class Recorder:
    """A `Renderer`: `render` records a participant's track until it ends, while recording
    is on (`[recorder] record_at_start`, then the start- and stop-recording commands)."""

    def __init__(self, config: VcalldConfig, names: Callable[[str], str] | None = None) -> None:
        self._config = config.recorder
        self._directory = config.recorder.directory
        self._names = names or (lambda participant_id: participant_id)
        self.recording = config.recorder.record_at_start
        self._recordings: dict[str, _Recording] = {}
        self._tracks: dict[str, int] = {}
        self._finished: list[RecordingStats] = []
        self._composite: CompositeRecording | None = None
        self._composite_writer: asyncio.Task[None] | None = None
        self._participants: list[tuple[str, str, str]] = []

    async def render(self, participant_id: str, track: MediaStreamTrack) -> None:
        self._tracks[participant_id] = self._tracks.get(participant_id, 0) + 1
        try:
            while True:
                frame = await track.recv()
                if self.recording and isinstance(frame, Frame):
                    self._take(participant_id, track.kind, frame)
        except MediaStreamError:
            pass
        finally:
            if self._composite is not None:
                self._composite.track_ended(participant_id, track.kind)
            self._tracks[participant_id] -= 1
            if not self._tracks[participant_id]:
                del self._tracks[participant_id]
                await _closed(self._end(participant_id))
            if not self._tracks:  # the last one left: the composite ends with its call
                await _closed(self._end_composite())

    def show_state(self, state: DeviceState) -> None:
        """Who is in the call, for the composite's tiles."""
        self._participants = [(p.id, p.name, p.connection) for p in state.participants]
        if self._composite is not None:
            self._composite.participants(self._participants)

    async def stop(self) -> None:
        """Stop recording: every file is closed, playable; new ones start with `start`."""
        self.recording = False
        ending = [self._end(participant_id) for participant_id in list(self._recordings)]
        await _closed(*ending, self._end_composite())

    def _take(self, participant_id: str, kind: str, frame: Frame) -> None:
        if self._config.mode == "participants":
            self._recording_of(participant_id).offer(kind, frame)
            return
        composite = self._composite or self._begin_composite()
        if isinstance(frame, VideoFrame):
            composite.video(participant_id, frame)
        elif isinstance(frame, AudioFrame):
            composite.audio(participant_id, frame)

    def _begin_composite(self) -> CompositeRecording:
        path = self._directory / f"{time.strftime('%Y%m%d-%H%M%S')}-composite.mkv"
        composite = self._composite = CompositeRecording(self._config, path)
        composite.participants(self._participants)
        self._composite_writer = asyncio.get_running_loop().create_task(
            run_in_own_thread("composite-recorder", composite.write, composite.done),
            name="record-composite",
        )
        self._composite_writer.add_done_callback(lambda _: self._finished.append(composite.stats))
        log.info("recording the call to %s", path)
        return composite

    def start(self) -> None:
        self.recording = True

    def _recording_of(self, participant_id: str) -> _Recording:
        recording = self._recordings.get(participant_id)
        if recording is None:
            recording = self._recordings[participant_id] = self._begin(participant_id)
        return recording

    def _begin(self, participant_id: str) -> _Recording:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self._names(participant_id))[:64]
        path = self._directory / f"{stamp}-{name}-{participant_id[:12]}.mkv"
        recording = _Recording(RecordingStats(path))
        writer = _Writer(recording)
        # Owned here: whoever ends the recording (its tracks' end, or stop) awaits it.
        recording.writer = asyncio.get_running_loop().create_task(
            run_in_own_thread("recorder", writer.write, recording.done), name=f"record-{name}"
        )
        recording.writer.add_done_callback(lambda _: self._finished.append(recording.stats))
        log.info("recording %s to %s", name, path)
        return recording

    def _end(self, participant_id: str) -> asyncio.Task[None] | None:
        recording = self._recordings.pop(participant_id, None)
        if recording is None:
            return None
        recording.done.set()
        return recording.writer

    def _end_composite(self) -> asyncio.Task[None] | None:
        composite, self._composite = self._composite, None
        if composite is None:
            return None
        composite.done.set()
        return self._composite_writer

    def forget(self, participant_id: str) -> None:
        """Nothing to drop: the file was closed when the participant's tracks ended."""

    def snapshot(self) -> dict[str, Any]:
        """Per participant being recorded (or "@composite"): the file, frames written and
        dropped."""
        recorded = {
            participant_id: {"recording": described(recording.stats)}
            for participant_id, recording in self._recordings.items()
        }
        if self._composite is not None:
            recorded[COMPOSITE] = {"recording": described(self._composite.stats)}
        return recorded

    def finished(self) -> list[RecordingStats]:
        return list(self._finished)


async def _closed(*writers: asyncio.Task[None] | None) -> None:
    """Wait for files to be closed, also while being cancelled (the participant left, the
    daemon stops): a cancelled wait still gives them CLOSE_SECONDS, then goes on."""
    pending = {writer for writer in writers if writer is not None}
    if not pending:
        return
    try:
        await asyncio.shield(asyncio.gather(*pending))
    except asyncio.CancelledError:
        await asyncio.wait(pending, timeout=CLOSE_SECONDS)
        raise


class _Writer:
    """The thread's side: opening the file once the tracks are known, encoding, closing."""

    def __init__(self, recording: _Recording) -> None:
        self._recording = recording
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._audio_fifo: AudioFifo | None = None
        self._resampler: AudioResampler | None = None
        self._start = 0.0
        self._last_video_pts = -1
        self._audio_samples = 0

    def write(self) -> None:
        stats = self._recording.stats
        try:
            early = self._first_frames()
            if not early:
                return
            self._open(early)
            for early_item in early:
                self._encode(*early_item)
            while (item := self._next()) is not None:
                self._encode(*item)
            self._close()
        except (OSError, av.FFmpegError) as error:
            stats.error = f"{type(error).__name__}: {error}"
            log.error("recording to %s failed: %s", stats.path, stats.error)
            self._abandon()

    def _next(self) -> tuple[str, Frame, float] | None:
        """The next frame, or None once no more will come."""
        frames, done = self._recording.frames, self._recording.done
        while True:
            try:
                return frames.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if done.is_set():
                    return None

    def _first_frames(self) -> list[tuple[str, Frame, float]]:
        first = self._next()
        if first is None:
            return []
        early, deadline = [first], first[2] + START_GRACE_SECONDS
        while {kind for kind, _, _ in early} != {"audio", "video"} and time.monotonic() < deadline:
            try:
                early.append(self._recording.frames.get(timeout=POLL_SECONDS))
            except queue.Empty:
                if self._recording.done.is_set():
                    break
        return early

    def _open(self, early: list[tuple[str, Frame, float]]) -> None:
        path = self._recording.stats.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), "w", format="matroska")
        self._start = early[0][2]
        picture = next((frame for kind, frame, _ in early if kind == "video"), None)
        if isinstance(picture, VideoFrame):
            video = self._container.add_stream("libx264", options={"preset": "ultrafast"})
            video.width, video.height = picture.width // 2 * 2, picture.height // 2 * 2
            video.pix_fmt, video.codec_context.time_base = "yuv420p", MILLISECONDS
            self._video = video
        if any(kind == "audio" for kind, _, _ in early):
            self._audio = self._container.add_stream("libopus", rate=48000, layout="stereo")
            self._audio_fifo = AudioFifo()
            self._resampler = AudioResampler(format="s16", layout="stereo", rate=48000)

    def _encode(self, kind: str, frame: Frame, arrived: float) -> None:
        stats = self._recording.stats
        if kind == "video" and self._video is not None and isinstance(frame, VideoFrame):
            pts = max(self._last_video_pts + 1, round((arrived - self._start) * 1000))
            picture = frame.reformat(self._video.width, self._video.height, "yuv420p")
            picture.pts, picture.time_base, self._last_video_pts = pts, MILLISECONDS, pts
            self._mux(self._video, picture)
            stats.video_frames += 1
        elif kind == "audio" and self._audio is not None and isinstance(frame, AudioFrame):
            self._encode_audio(frame, arrived)
            stats.audio_frames += 1

    def _encode_audio(self, frame: AudioFrame, arrived: float) -> None:
        assert self._audio_fifo is not None and self._resampler is not None
        if not self._audio_samples and not self._audio_fifo.samples:
            lead = round((arrived - self._start) * 48000)  # the first sound, at its arrival
            if lead > 0:
                self._audio_fifo.write(silent_audio(lead, "stereo", 48000))
        frame.pts = None
        for resampled in self._resampler.resample(frame):
            resampled.pts = None
            self._audio_fifo.write(resampled)
        while (chunk := self._audio_fifo.read(OPUS_FRAME)) is not None:
            chunk.pts, chunk.time_base = self._audio_samples, Fraction(1, 48000)
            self._audio_samples += chunk.samples
            self._mux(self._audio, chunk)

    def _mux(self, stream: Any, frame: Frame | None) -> None:
        for packet in stream.encode(frame):
            self._container.mux(packet)

    def _close(self) -> None:
        for stream in (self._video, self._audio):
            if stream is not None:
                self._mux(stream, None)
        self._container.close()

    def _abandon(self) -> None:
        """After a write failed: let go of the file, and of the frames still coming."""
        if self._container is not None:
            with suppress(OSError, av.FFmpegError):
                self._container.close()
        while self._next() is not None:
            pass
