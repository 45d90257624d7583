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


class ChainSpec:
    """What one chain should hold: the configured entries until `set-processors` replaces
    them; every chain built from the spec follows each replacement from its next frame."""

    def __init__(self, entries: Sequence[ProcessorEntry]) -> None:
        self.entries = list(entries)
        self.generation = 0

    def replace(self, entries: Sequence[ProcessorEntry]) -> None:
        self.entries = list(entries)
        self.generation += 1


class ProcessorChain:
    """The processors of a spec, made in the worker thread (a logo is read there) and run
    there, one frame at a time; an empty spec costs no thread hop."""

    def __init__(self, spec: ChainSpec) -> None:
        self._spec = spec
        self._generation = -1
        self._active: list[tuple[str, FrameProcessor]] = []
        self._disabled: list[Disabled] = []
        self._lock = threading.Lock()

    @property
    def empty(self) -> bool:
        return not self._spec.entries

    async def run(self, frame: Frame, disabled: Callable[[Disabled], None]) -> Frame:
        """The frame through the chain; `disabled` hears of each processor taken out."""
        entries, generation = self._spec.entries, self._spec.generation
        if not entries:
            self._active, self._generation = [], generation
            return frame
        processed = await asyncio.to_thread(self._process, frame, entries, generation)
        with self._lock:
            taken, self._disabled = self._disabled, []
        for record in taken:
            disabled(record)
        return processed

    def _process(self, frame: Frame, entries: list[ProcessorEntry], generation: int) -> Frame:
        if generation != self._generation:
            self._active, self._generation = self._made(entries), generation
        for name, processor in list(self._active):
            try:
                processed = processor.process(frame)
                if not isinstance(processed, type(frame)):
                    raise TypeError(f"returned {type(processed).__name__}, not a frame")
            except Exception as error:
                log.exception("processor %s failed: disabled", name)
                self._disable(name, processor, _reason(error))
                continue
            frame = processed
        return frame

    def _made(self, entries: list[ProcessorEntry]) -> list[tuple[str, FrameProcessor]]:
        """The entries' processors; one that cannot be made (its logo file is gone) is
        reported as disabled, and the rest run."""
        made = []
        for entry in entries:
            try:
                made.append((entry.name, make_processor(entry.name, entry.options)))
            except Exception as error:
                log.exception("processor %s cannot start: disabled", entry.name)
                with self._lock:
                    self._disabled.append(Disabled(entry.name, _reason(error)))
        return made

    def _disable(self, name: str, processor: FrameProcessor, error: str) -> None:
        self._active = [entry for entry in self._active if entry[1] is not processor]
        with self._lock:
            self._disabled.append(Disabled(name, error))


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
