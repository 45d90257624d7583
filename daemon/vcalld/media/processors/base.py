"""The processor plugin interface, and making a chain's processors from their config."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from av.frame import Frame
from pydantic import BaseModel

from vcalld.plugins import PROCESSOR_GROUP, load_plugin


class FrameProcessor(Protocol):
    def process(self, frame: Frame) -> Frame:
        """The frame to pass on: `frame` itself, changed in place, or a new one. Audio comes
        as packed s16, video in the source's format (`frame.reformat` converts)."""


class ProcessorFactory(Protocol):
    kind: ClassVar[str]  # "audio" or "video"

    def __call__(self, options: dict[str, Any]) -> FrameProcessor: ...


def options_model(factory: object) -> type[BaseModel] | None:
    """The pydantic model a factory's options are checked against at config time, if any."""
    model = getattr(factory, "Options", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def make_processor(name: str, options: dict[str, Any]) -> FrameProcessor:
    factory: ProcessorFactory = load_plugin(PROCESSOR_GROUP, name)
    return factory(options)
