"""Local control over a Unix socket: what `vcallctl` talks to on the device itself.

Access is by file permission (0660), so only root and the daemon's group can send commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from vcalld.commands import CommandResult, parse_command
from vcalld.control.feeds import EventFeed, stats_samples
from vcalld.daemon import Daemon
from vcalld.errors import InvalidCommandError

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024
WATCH_BACKLOG = 256
DEFAULT_STATS_INTERVAL = 5.0


class LocalControl:
    def __init__(self, daemon: Daemon, path: Path) -> None:
        self._daemon = daemon
        self._path = path
        self._runner: web.AppRunner | None = None
        self._watchers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/command/{name}", self._command)
        app.router.add_get("/state", self._state)
        app.router.add_get("/media", self._media)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/watch", self._watch)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.unlink(missing_ok=True)
        # No access log: status polls would bury the journal's useful lines.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self._path)).start()
        os.chmod(self._path, 0o660)
        log.info("control socket at %s", self._path)

    async def stop(self) -> None:
        for watcher in self._watchers:
            _end(watcher)  # so cleanup need not wait for open streams
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._path.unlink(missing_ok=True)

    async def _command(self, request: web.Request) -> web.Response:
        try:
            body = await request.text()
            arguments = json.loads(body) if body.strip() else None
            command = parse_command(request.match_info["name"], arguments)
        except json.JSONDecodeError as error:
            result = CommandResult.failure(InvalidCommandError(f"arguments: not JSON: {error}"))
        except InvalidCommandError as error:
            result = CommandResult.failure(error)
        else:
            result = await self._daemon.execute(command)
        return web.json_response(result.model_dump(mode="json"), status=200 if result.ok else 400)

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._daemon.state.current.model_dump(mode="json"))

    async def _media(self, request: web.Request) -> web.Response:
        return web.json_response(self._daemon.media())

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self._daemon.call_stats())

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        """The current state, then events as they happen and call statistics every
        `?stats_interval=` seconds, one JSON object per line, until the client or the daemon
        goes away."""
        try:
            interval = float(request.query.get("stats_interval", DEFAULT_STATS_INTERVAL))
        except ValueError:
            interval = math.nan
        if not interval > 0:
            problem = CommandResult.failure(
                InvalidCommandError("stats_interval: must be a number of seconds above 0")
            )
            return web.json_response(problem.model_dump(mode="json"), status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        feed: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=WATCH_BACKLOG)
        feed.put_nowait({"state": self._daemon.state.current.model_dump(mode="json")})
        self._watchers.add(feed)
        events = EventFeed(self._daemon.state, lambda event: _offer(feed, {"event": event}))
        try:
            async with asyncio.TaskGroup() as tasks:
                sampler = tasks.create_task(self._sample_stats(feed, interval))
                while (item := await feed.get()) is not None:
                    await response.write(json.dumps(item).encode() + b"\n")
                sampler.cancel()
        except* ConnectionError:
            log.debug("a watcher went away")
        finally:
            events.close()
            self._watchers.discard(feed)
        return response

    async def _sample_stats(
        self, feed: asyncio.Queue[dict[str, Any] | None], interval: float
    ) -> None:
        async for stats in stats_samples(self._daemon, interval):
            _offer(feed, {"stats": stats})


def _offer(feed: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any]) -> None:
    """A watcher that stopped reading loses items, rather than the daemon its memory."""
    with contextlib.suppress(asyncio.QueueFull):
        feed.put_nowait(item)


def _end(feed: asyncio.Queue[dict[str, Any] | None]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        if feed.full():
            feed.get_nowait()
    feed.put_nowait(None)
