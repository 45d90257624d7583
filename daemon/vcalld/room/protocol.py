"""Signalling messages between participants and the room server (JSON over WebSocket).

Client to server: `join`, `leave`, `signal` (relayed as-is to one participant). Server to
client: `joined`, `participant-joined`, `participant-left`, `signal`, `error`. A participant
that joins sends the offers to everyone already in the room, so offers never cross.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

ROOM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Join(_Message):
    type: Literal["join"]
    room: str = Field(pattern=ROOM_PATTERN)
    name: str = Field(min_length=1, max_length=64)
    token: str | None = Field(default=None, max_length=2048, description="A room token.")


class Leave(_Message):
    type: Literal["leave"]


class Signal(_Message):
    """An SDP description or ICE candidate for one other participant."""

    type: Literal["signal"]
    to: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]


ClientMessage = Annotated[Join | Leave | Signal, Field(discriminator="type")]
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_client_message(text: str) -> ClientMessage:
    try:
        return _client_adapter.validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ProtocolError("invalid-json", f"not valid JSON: {first['msg']}") from None
        problems = []
        for detail in error.errors(include_url=False):
            # loc is (message type, field, ...): () for a non-object, (type,) for a bad tag.
            location = ".".join(str(part) for part in detail["loc"][1:] or detail["loc"])
            location = location or "message"
            problems.append(f"{location}: {detail['msg']}")
        raise ProtocolError("invalid-message", "; ".join(problems)) from None


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
