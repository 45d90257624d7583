"""Staying in a room: a backend's session is run again after it ends, with capped, jittered
backoff, and every change is reported to the observer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from vcalld.backoff import backoff_seconds
from vcalld.call.events import CallObserver
from vcalld.config.models import CallConfig
from vcalld.state import CallState

log = logging.getLogger(__name__)


async def stay_in_room(
    room: str,
    *,
    config: CallConfig,
    observer: CallObserver,
    session: Callable[[asyncio.Event], Awaitable[None]],
    expected: tuple[type[Exception], ...],
    server: str,
) -> None:
    """Runs `session(joined)` again whenever it ends, until cancelled; it sets `joined` once
    in the room, which resets the backoff. `expected` failures
    (the server is unreachable, refuses us) are logged as a line naming `server`; any other
    with its traceback, since a kiosk rejoins rather than stays out either way."""
    attempt = 0
    while True:
        state = CallState.CONNECTING if attempt == 0 else CallState.RECONNECTING
        observer.call_state_changed(state, room)
        error: str | None = None
        joined = asyncio.Event()
        try:
            await session(joined)
        except expected as failure:
            error = f"{server}: {failure or type(failure).__name__}"
            log.warning("%s", error)
        except Exception as failure:
            error = f"call session failed: {type(failure).__name__}: {failure}"
            log.exception("%s; rejoining", error)
        if joined.is_set():
            attempt = 0
        observer.call_state_changed(CallState.RECONNECTING, room, error)
        await asyncio.sleep(
            backoff_seconds(attempt, config.reconnect_min_seconds, config.reconnect_max_seconds)
        )
        attempt += 1
