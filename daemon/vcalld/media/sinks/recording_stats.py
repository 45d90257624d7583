"""What a recording (a participant's file, or the composite) reports while it is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RecordingStats:
    path: Path
    video_frames: int = 0
    audio_frames: int = 0
    dropped: int = 0
    error: str | None = None


def described(stats: RecordingStats) -> dict[str, Any]:
    return {
        "path": str(stats.path),
        "video_frames": stats.video_frames,
        "audio_frames": stats.audio_frames,
        "dropped": stats.dropped,
        "error": stats.error,
    }
