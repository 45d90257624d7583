"""The source plugin interface: built-ins register through entry points like third parties."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from av.frame import Frame

from vcalld.config import AudioConfig, VideoConfig

SOURCE_GROUP = "vcalld.sources"
Publish = Callable[[Frame], None]


class MediaSource(Protocol):
    """Produces frames until cancelled; `publish` never blocks."""

    kind: str

    async def run(self, publish: Publish) -> None: ...


class SourceFactory(Protocol):
    def __call__(self, config: VideoConfig | AudioConfig) -> MediaSource: ...


class UnknownSourceError(LookupError):
    pass


def load_source(name: str, config: VideoConfig | AudioConfig) -> MediaSource:
    found = entry_points(group=SOURCE_GROUP, name=name)
    if not found:
        available = sorted(point.name for point in entry_points(group=SOURCE_GROUP))
        raise UnknownSourceError(f"no source {name!r} (installed: {', '.join(available)})")
    factory: SourceFactory = next(iter(found)).load()
    return factory(config)
