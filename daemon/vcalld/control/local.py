"""Local control over a Unix socket: what `vcallctl` talks to on the device itself.

Access is by file permission (0660), so only root and the daemon's group can send commands.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from aiohttp import web

from vcalld.commands import CommandResult, parse_command
from vcalld.daemon import Daemon
from vcalld.errors import InvalidCommandError

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024


class LocalControl:
    def __init__(self, daemon: Daemon, path: Path) -> None:
        self._daemon = daemon
        self._path = path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/command/{name}", self._command)
        app.router.add_get("/state", self._state)
        app.router.add_get("/media", self._media)
        app.router.add_get("/stats", self._stats)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.unlink(missing_ok=True)
        # No access log: status polls would bury the journal's useful lines.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self._path)).start()
        os.chmod(self._path, 0o660)
        log.info("control socket at %s", self._path)

    async def stop(self) -> None:
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
        return web.json_response(self._daemon.renderer.snapshot())

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self._daemon.call_stats())
