"""A command message's payload: its arguments plus the envelope fields MQTT 3.1.1 needs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from vcalld.errors import ExpiredCommandError, InvalidCommandError

MAX_ID_LENGTH = 128


@dataclass
class CommandRequest:
    """`arguments` go to the command; `id`, `reply_to` and `expires_at` are the envelope that
    MQTT 5 carries as correlation data, response topic and message expiry."""

    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None
    reply_to: str | None = None
    expires_at: float | None = None
    problem: InvalidCommandError | None = None

    def check_fresh(self) -> None:
        if self.expires_at is not None and time.time() > self.expires_at:
            raise ExpiredCommandError(f"expires_at: command expired at {self.expires_at:.3f}")


def parse_request(payload: bytes) -> CommandRequest:
    """Split a payload into arguments and envelope. A bad payload is not an exception: it is a
    request whose `problem` names the field, and it keeps whatever envelope was readable so
    the error can still be answered."""
    request = CommandRequest()
    if not payload.strip():
        return request
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        request.problem = InvalidCommandError(f"payload: not JSON: {error}")
        return request
    if not isinstance(data, dict):
        request.problem = InvalidCommandError("payload: must be a JSON object of arguments")
        return request
    reply_to = data.pop("reply_to", None)
    request_id = data.pop("id", None)
    expires_at = data.pop("expires_at", None)
    if isinstance(reply_to, str):
        request.reply_to = reply_to
    elif reply_to is not None:
        request.problem = InvalidCommandError("reply_to: must be a topic name")
    if _valid_id(request_id):
        request.id = request_id
    else:
        request.problem = InvalidCommandError(
            f"id: must be a string or an integer of at most {MAX_ID_LENGTH} characters"
        )
    if expires_at is None or (
        isinstance(expires_at, int | float) and not isinstance(expires_at, bool)
    ):
        request.expires_at = expires_at
    else:
        request.problem = InvalidCommandError("expires_at: must be a Unix time in seconds")
    request.arguments = data
    return request


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    return len(str(value)) <= MAX_ID_LENGTH
