"""The kiosk's screen: everyone in the call, full screen. It measures what it shows the way the
stats renderer does, so call statistics and `vcallctl media` read the same with a screen."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame

from vcalld.config import VcalldConfig
from vcalld.media.display.screen_thread import Screenshot, ScreenThread
from vcalld.media.display.tiles import SELF, Tiles
from vcalld.media.sinks.stats import StatsRenderer
from vcalld.media.sources.base import ReportProblem
from vcalld.state import CallState, DeviceState

SCREENSHOT_SECONDS = 5.0
IDLE_TEXT = {
    CallState.IDLE: "not in a call",
    CallState.CONNECTING: "connecting…",
    CallState.RECONNECTING: "reconnecting…",
    CallState.IN_CALL: "waiting for others to join",
    CallState.FAILED: "the call failed",
}


class DisplayRenderer(StatsRenderer):
    def __init__(self, config: VcalldConfig) -> None:
        super().__init__(config)
        self._config = config
        self._tiles = Tiles()
        self._idle = IDLE_TEXT[CallState.IDLE]
        self._thread: ScreenThread | None = None

    async def run(self, report: ReportProblem) -> None:
        """Keep the screen until cancelled; `report` hears why it cannot be shown."""
        self._thread = ScreenThread(self._config.display, self._tiles, lambda: self._idle, report)
        try:
            await self._thread.run()
        finally:
            self._thread = None

    def show_state(self, state: DeviceState) -> None:
        self._idle = IDLE_TEXT[state.call]
        self._tiles.participants([(p.id, p.name, p.connection) for p in state.participants])

    async def render_local(self, track: MediaStreamTrack) -> None:
        """The device's own picture, in a corner: the self view."""
        self._tiles.show_self("You")
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self._tiles.video(SELF, frame)
        except MediaStreamError:
            return
        finally:
            self._tiles.forget(SELF)

    def take_frame(self, participant_id: str, frame: Frame) -> None:
        if isinstance(frame, VideoFrame):
            self._tiles.video(participant_id, frame)
        elif isinstance(frame, AudioFrame):
            self._tiles.audio(participant_id, frame)

    def forget(self, participant_id: str) -> None:
        super().forget(participant_id)
        self._tiles.forget(participant_id)

    async def screenshot(self) -> Screenshot:
        """The next screen drawn, as shown (for tests, benches and support)."""
        if self._thread is None:
            raise RuntimeError("the display is not running")
        return await asyncio.wait_for(
            asyncio.wrap_future(self._thread.screenshot()), SCREENSHOT_SECONDS
        )

    @property
    def screen_pid(self) -> int | None:
        """The screen process's, while the display is open (its CPU is the display's)."""
        return self._thread.pid if self._thread is not None else None

    @property
    def screens_shown(self) -> int:
        return self._thread.shown if self._thread is not None else 0
