"""A FIFO of audio blocks (frames along the first axis) taken out in any size: what the
mixer queues per participant and what the echo canceller queues of the speaker."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

Block = np.ndarray[Any, Any]


class SampleFifo:
    def __init__(self) -> None:
        self._blocks: deque[Block] = deque()
        self.queued = 0

    def push(self, block: Block) -> None:
        if len(block):
            self._blocks.append(block)
            self.queued += len(block)

    def take(self, frames: int) -> Block | None:
        """Up to `frames` frames, fewer if it runs dry, None if it is empty."""
        parts, wanted = [], frames
        while wanted and self._blocks:
            block = self._blocks[0]
            if len(block) <= wanted:
                parts.append(self._blocks.popleft())
            else:
                parts.append(block[:wanted])
                self._blocks[0] = block[wanted:]
            wanted -= len(parts[-1])
        self.queued -= frames - wanted
        return np.concatenate(parts) if parts else None
