"""The renderer plugin interface: where remote participants' media ends up."""

from __future__ import annotations

from typing import Any, Protocol

from aiortc.mediastreams import MediaStreamTrack

from vcalld.config import VcalldConfig
from vcalld.plugins import RENDERER_GROUP, load_plugin


class Renderer(Protocol):
    async def render(self, participant_id: str, track: MediaStreamTrack) -> None:
        """Consume `track` until it ends; cancelled when the participant goes away."""

    def forget(self, participant_id: str) -> None:
        """Drop what is kept about a participant who left."""

    def snapshot(self) -> dict[str, Any]:
        """What is being shown or played, per participant id (JSON-ready); at least
        `{"video": {"fps", "width", "height"}}` for a participant whose video is shown."""


class RendererFactory(Protocol):
    def __call__(self, config: VcalldConfig) -> Renderer: ...


def load_renderer(name: str, config: VcalldConfig) -> Renderer:
    factory: RendererFactory = load_plugin(RENDERER_GROUP, name)
    return factory(config)
