"""The renderer plugin interface: where remote participants' media ends up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiortc.mediastreams import MediaStreamTrack

from vcalld.config import VcalldConfig
from vcalld.plugins import RENDERER_GROUP, load_plugin

if TYPE_CHECKING:
    from vcalld.media.sources.base import ReportProblem
    from vcalld.state import DeviceState


class Renderer(Protocol):
    async def render(self, participant_id: str, track: MediaStreamTrack) -> None:
        """Consume `track` until it ends; cancelled when the participant goes away."""

    def forget(self, participant_id: str) -> None:
        """Drop what is kept about a participant who left."""

    def snapshot(self) -> dict[str, Any]:
        """What is being shown or played, per participant id (JSON-ready); at least
        `{"video": {"fps", "width", "height"}}` for a participant whose video is shown."""


@runtime_checkable
class ScreenRenderer(Protocol):
    """A renderer with a screen of its own: a thread the daemon owns, the call's participants
    to lay out (placeholders for those without a picture), and the device's own picture."""

    async def run(self, report: ReportProblem) -> None:
        """Keep the screen until cancelled; `report` hears why it cannot be shown."""

    def show_state(self, state: DeviceState) -> None: ...

    async def render_local(self, track: MediaStreamTrack) -> None:
        """Show this device's own outgoing video (the self view) until the track ends."""


class RendererFactory(Protocol):
    def __call__(self, config: VcalldConfig) -> Renderer: ...


def load_renderer(name: str, config: VcalldConfig) -> Renderer:
    factory: RendererFactory = load_plugin(RENDERER_GROUP, name)
    return factory(config)
