"""Client of the local control socket, shared by `vcallctl` and the benches."""

from __future__ import annotations

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
