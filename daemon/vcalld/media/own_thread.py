"""Blocking work in a thread of its own, owned by a task: what the thread raises is raised in
the task, and cancelling the task stops the thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

JOIN_SECONDS = 2.0


async def run_in_own_thread(name: str, work: Callable[[], None], stopping: threading.Event) -> None:
    """Run `work` until it returns; on the way out (cancelled or not) `stopping` is set, which
    `work` must notice within a frame or period, and the thread gets JOIN_SECONDS to end.
    Not the default executor: work that lasts a call would hold one of its few threads."""
    finished: Future[None] = Future()

    def run() -> None:
        try:
            work()
        except BaseException as error:
            finished.set_exception(error)
        else:
            finished.set_result(None)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        # Shielded: the thread settles the future itself, also after a cancellation.
        await asyncio.shield(asyncio.wrap_future(finished))
    finally:
        stopping.set()
        await asyncio.to_thread(thread.join, JOIN_SECONDS)
