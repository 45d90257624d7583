"""Client of the local control socket, shared by `vcallctl` and the benches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

READ_ONLY = ("state", "media", "stats")


async def control_request(
    socket: Path,
    command: str,
    arguments: dict[str, Any] | None = None,
    limits: aiohttp.ClientTimeout | None = None,
) -> tuple[int, Any]:
    """(HTTP status, JSON reply) of one command, or of a read of `state`, `media`, `stats`."""
    connector = aiohttp.UnixConnector(path=str(socket))
    async with aiohttp.ClientSession(connector=connector, timeout=limits) as session:
        if command in READ_ONLY:
            request = session.get(f"http://vcalld/{command}")
        else:
            request = session.post(f"http://vcalld/command/{command}", json=arguments or {})
        async with request as response:
            return response.status, await response.json()


async def watch_local(socket: Path, stats_interval: float) -> AsyncIterator[dict[str, Any]]:
    """Events and call statistics as the daemon streams them; ends when the daemon stops."""
    connector = aiohttp.UnixConnector(path=str(socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://vcalld/watch", params={"stats_interval": stats_interval}) as response,
    ):
        response.raise_for_status()
        async for line in response.content:
            if line.strip():
                yield json.loads(line)
