"""The size and rate of the video a bench sends, as its command line and a daemon's config
give it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Picture:
    width: int = 640
    height: int = 480
    fps: int = 30

    @classmethod
    def parse(cls, size: str, fps: int) -> Picture:
        """From `--size WxH` and `--fps`."""
        width, height = (int(side) for side in size.split("x"))
        return cls(width, height, fps)

    def video_section(self) -> str:
        return f"[video]\nwidth = {self.width}\nheight = {self.height}\nfps = {self.fps}\n"

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at {self.fps} fps"
