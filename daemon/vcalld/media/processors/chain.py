"""An ordered chain of processors run on frames off the event loop: a processor that raises
is taken out of the chain, and the loop hears of it once."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from av.frame import Frame

from vcalld.config.models import ProcessorEntry
from vcalld.media.processors.base import FrameProcessor, make_processor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Disabled:
    name: str
    error: str


class ProcessorChain:
    def __init__(self, processors: Sequence[tuple[str, FrameProcessor]]) -> None:
        self._active = list(processors)
        self._disabled: list[Disabled] = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, entries: Sequence[ProcessorEntry]) -> ProcessorChain:
        """The configured processors; one that cannot be made (its logo file is gone) is
        reported as disabled with the first frame, and the rest run."""
        chain = cls([])
        for entry in entries:
            try:
                chain._active.append((entry.name, make_processor(entry.name, entry.options)))
            except Exception as error:
                log.exception("processor %s cannot start: disabled", entry.name)
                chain._disabled.append(Disabled(entry.name, f"{type(error).__name__}: {error}"))
        return chain

    def __bool__(self) -> bool:
        return bool(self._active)

    def process(self, frame: Frame) -> Frame:
        """Every active processor in order (in a worker thread)."""
        for name, processor in list(self._active):
            try:
                processed = processor.process(frame)
                if not isinstance(processed, type(frame)):
                    raise TypeError(f"returned {type(processed).__name__}, not a frame")
            except Exception as error:
                log.exception("processor %s failed: disabled", name)
                self._disable(name, processor, f"{type(error).__name__}: {error}")
                continue
            frame = processed
        return frame

    async def run(self, frame: Frame, disabled: Callable[[Disabled], None]) -> Frame:
        """`process` in the default executor; `disabled` hears of each processor it took out."""
        processed = await asyncio.to_thread(self.process, frame)
        with self._lock:
            taken, self._disabled = self._disabled, []
        for record in taken:
            disabled(record)
        return processed

    def _disable(self, name: str, processor: FrameProcessor, error: str) -> None:
        with self._lock:
            self._active = [entry for entry in self._active if entry[1] is not processor]
            self._disabled.append(Disabled(name, error))
