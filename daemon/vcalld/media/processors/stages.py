"""Where chains sit: between the outgoing sources and the fan-out, and on each remote track."""

from __future__ import annotations

from collections.abc import Callable

from aiortc.mediastreams import MediaStreamTrack
from av.frame import Frame

from vcalld.media.processors.chain import Disabled, ProcessorChain
from vcalld.media.waiting import Waiting


class OutgoingStage:
    """Frames from a source wait here (at most `depth`: a slow chain costs the oldest, never
    latency), are processed in order, and go on to `publish`."""

    def __init__(
        self,
        chain: ProcessorChain,
        publish: Callable[[Frame], None],
        depth: int,
        disabled: Callable[[Disabled], None],
    ) -> None:
        self._chain = chain
        self._publish = publish
        self._frames: Waiting[Frame] = Waiting(depth)
        self._disabled = disabled

    @property
    def dropped(self) -> int:
        return self._frames.dropped

    @property
    def needed(self) -> bool:
        """Whether frames must go through: a chain to run, or frames still queued before
        it emptied (which later ones must not overtake)."""
        return not self._chain.empty or bool(self._frames)

    def submit(self, frame: Frame) -> None:
        self._frames.put(frame)

    async def run(self) -> None:
        async for frame in self._frames.taken():
            self._publish(await self._chain.run(frame, self._disabled))


class ProcessedTrack(MediaStreamTrack):
    """A remote track through a chain of its own."""

    def __init__(
        self, source: MediaStreamTrack, chain: ProcessorChain, disabled: Callable[[Disabled], None]
    ) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._chain = chain
        self._disabled = disabled

    async def recv(self) -> Frame:
        frame = await self._source.recv()
        assert isinstance(frame, Frame)
        return await self._chain.run(frame, self._disabled)
