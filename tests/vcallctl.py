"""`vcallctl` as a real process: one-shot commands, and `watch` streams read line by line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.helpers import BIN

LINE_SECONDS = 20.0


async def vcallctl(*words: str) -> tuple[int, Any, str]:
    """(exit code, JSON printed on stdout or None, stderr)."""
    process = await asyncio.create_subprocess_exec(
        BIN / "vcallctl",
        *words,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, json.loads(out) if out.strip() else None, err.decode()


class Watch:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next printed line that is `wanted`; every line read is kept in `lines`."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(LINE_SECONDS):
                while True:
                    raw = await self.process.stdout.readline()
                    assert raw, f"vcallctl watch ended; it printed {self.lines}"
                    line: dict[str, Any] = json.loads(raw)
                    self.lines.append(line)
                    if wanted(line):
                        return line
        except TimeoutError:
            raise AssertionError(f"not printed within {LINE_SECONDS} s: {self.lines}") from None


@asynccontextmanager
async def watching(*words: str) -> AsyncIterator[Watch]:
    process = await asyncio.create_subprocess_exec(
        BIN / "vcallctl", *words, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield Watch(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
