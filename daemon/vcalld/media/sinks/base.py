"""The renderer plugin interface: where remote participants' media ends up."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from aiortc.mediastreams import MediaStreamTrack

from vcalld.config import VcalldConfig

RENDERER_GROUP = "vcalld.renderers"


class Renderer(Protocol):
    async def render(self, participant_id: str, track: MediaStreamTrack) -> None:
        """Consume `track` until it ends; cancelled when the participant goes away."""

    def forget(self, participant_id: str) -> None:
        """Drop what is kept about a participant who left."""

    def snapshot(self) -> dict[str, Any]:
        """What is being shown or played, per participant (JSON-ready)."""


class RendererFactory(Protocol):
    def __call__(self, config: VcalldConfig) -> Renderer: ...


class UnknownRendererError(LookupError):
    pass


def load_renderer(name: str, config: VcalldConfig) -> Renderer:
    found = entry_points(group=RENDERER_GROUP, name=name)
    if not found:
        available = sorted(point.name for point in entry_points(group=RENDERER_GROUP))
        raise UnknownRendererError(f"no renderer {name!r} (installed: {', '.join(available)})")
    factory: RendererFactory = next(iter(found)).load()
    return factory(config)
