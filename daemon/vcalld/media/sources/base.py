"""The source plugin interface: built-ins register through entry points like third parties."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from av.frame import Frame

from vcalld.config import AudioConfig, VideoConfig
from vcalld.plugins import SOURCE_GROUP, load_plugin

Publish = Callable[[Frame], None]


class MediaSource(Protocol):
    """Produces frames until cancelled; `publish` never blocks."""

    kind: str

    async def run(self, publish: Publish) -> None: ...


class SourceFactory(Protocol):
    def __call__(self, config: VideoConfig | AudioConfig) -> MediaSource: ...


def load_source(name: str, config: VideoConfig | AudioConfig) -> MediaSource:
    factory: SourceFactory = load_plugin(SOURCE_GROUP, name)
    return factory(config)
