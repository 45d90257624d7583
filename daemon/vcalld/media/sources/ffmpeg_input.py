"""What video sources that FFmpeg opens (a display by x11grab, a file, a stream) share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import av
from av import VideoFrame

from vcalld.media.device_thread import DeviceThread
from vcalld.media.sources.base import ReportProblem


class FFmpegInput(DeviceThread[Any]):
    """FFmpeg's errors mean the input cannot be opened or was lost (and it is retried); it is
    fine once a picture arrives, not when it opens."""

    fine_when_open = False
    unavailable_errors = (av.FFmpegError, OSError)
    lost_errors = (av.FFmpegError, OSError)

    def __init__(
        self, name: str, deliver: Callable[[VideoFrame], None], report: ReportProblem
    ) -> None:
        super().__init__(name, report)
        self._deliver = deliver

    def _close(self, handle: Any) -> None:
        handle.close()
