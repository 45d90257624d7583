"""The composite recording: the call as one picture, laid out as the kiosk's screen lays it
out (a grid of everyone, placeholders, names), with everyone's sound mixed, to one file.

A thread of its own draws a screen at a fixed rate from the newest picture of each
participant, and takes as much of the mix as that screen lasts: the file's clock is the
writer's, so a participant whose frames stall freezes in the picture without stretching the
sound, and the mix absorbs jitter and drift as the speaker's does.
"""

from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av import AudioFrame, VideoFrame
from av.audio.resampler import AudioResampler

from vcalld.config.models import RecorderConfig
from vcalld.media.display.compositor import compose
from vcalld.media.display.frame_canvas import FrameCanvas
from vcalld.media.display.tiles import Tiles
from vcalld.media.layout import s16_samples
from vcalld.media.mixer import Mixer
from vcalld.media.sinks.recording_stats import RecordingStats

log = logging.getLogger(__name__)

RATE, CHANNELS, OPUS_FRAME = 48000, 2, 960
PREFILL_SECONDS, CEILING_SECONDS = 0.06, 0.3
IDLE_TEXT = "waiting for others to join"
MAX_BEHIND_SECONDS = 1.0  # a writer further behind skips screens rather than catch up


class CompositeRecording:
    """Fed from the event loop (pictures, sound, who is in the call); written by `write`,
    which runs in its own thread until `done` is set."""

    def __init__(self, config: RecorderConfig, path: Path) -> None:
        self.stats = RecordingStats(path)
        self.done = threading.Event()
        self._width, self._height, self._fps = (
            config.composite_width,
            config.composite_height,
            config.composite_fps,
        )
        self._tiles = Tiles()
        self._mixer = Mixer(
            RATE, CHANNELS, round(RATE * PREFILL_SECONDS), round(RATE * CEILING_SECONDS)
        )
        self._resamplers: dict[str, AudioResampler] = {}

    def participants(self, participants: list[tuple[str, str, str]]) -> None:
        """(id, name, connection) of everyone in the call, in the order they joined."""
        self._tiles.participants(participants)

    def video(self, participant_id: str, frame: VideoFrame) -> None:
        self._tiles.video(participant_id, frame)

    def audio(self, participant_id: str, frame: AudioFrame) -> None:
        self._tiles.audio(participant_id, frame)
        resampler = self._resamplers.get(participant_id)
        if resampler is None:
            resampler = self._resamplers[participant_id] = AudioResampler("s16", "stereo", RATE)
        for resampled in resampler.resample(frame):
            self._mixer.push(participant_id, s16_samples(resampled))

    def track_ended(self, participant_id: str, kind: str) -> None:
        if kind == "audio":
            self._mixer.remove(participant_id)
            self._resamplers.pop(participant_id, None)

    def write(self) -> None:
        """The thread: screens and sound until `done`, then the file closed, playable."""
        path = self.stats.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(path), "w", format="matroska") as container:
                self._write_into(container)
        except (OSError, av.FFmpegError) as error:
            self.stats.error = f"{type(error).__name__}: {error}"
            log.error("composite recording to %s failed: %s", path, self.stats.error)

    def _write_into(self, container: Any) -> None:
        video = container.add_stream("libx264", rate=self._fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = self._width, self._height, "yuv420p"
        audio = container.add_stream("libopus", rate=RATE, layout="stereo")
        canvas = FrameCanvas(self._width, self._height)
        start, screen, samples = time.monotonic(), 0, 0
        while not self.done.wait(max(0.0, start + screen / self._fps - time.monotonic())):
            behind = time.monotonic() - (start + screen / self._fps)
            if behind > MAX_BEHIND_SECONDS:
                skipped = int(behind * self._fps)
                screen += skipped
                self.stats.dropped += skipped
            remote, _ = self._tiles.views()
            compose(canvas, remote, None, IDLE_TEXT)
            picture = canvas.frame().reformat(format="yuv420p")
            picture.pts, picture.time_base = screen, Fraction(1, self._fps)
            _mux(container, video, picture)
            self.stats.video_frames += 1
            screen += 1
            # The sound this screen lasts, in whole Opus frames, kept in step with the picture.
            while samples + OPUS_FRAME <= screen * RATE // self._fps:
                _mux(container, audio, self._sound(samples))
                samples += OPUS_FRAME
                self.stats.audio_frames += 1
        _mux(container, video, None)
        _mux(container, audio, None)

    def _sound(self, pts: int) -> AudioFrame:
        mixed = self._mixer.mix(OPUS_FRAME)
        frame = AudioFrame.from_ndarray(mixed.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, pts, Fraction(1, RATE)
        return frame


def _mux(container: Any, stream: Any, frame: VideoFrame | AudioFrame | None) -> None:
    for packet in stream.encode(frame):
        container.mux(packet)
