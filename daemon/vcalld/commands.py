"""Every remote action as one validated model; transports only translate to and from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vcalld.config.models import ControlName, ControlSetting
from vcalld.errors import InvalidCommandError, VcalldError
from vcalld.state import DeviceState

ROOM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinCommand(_Command):
    """Join `room`, or the configured room; leaves the current room first if it differs."""

    command: Literal["join"] = "join"
    room: str | None = Field(default=None, pattern=ROOM_PATTERN)


class LeaveCommand(_Command):
    command: Literal["leave"] = "leave"


class SetMuteCommand(_Command):
    """Mute sends silence or black frames, so the call and its encoders keep running."""

    command: Literal["set-mute"] = "set-mute"
    audio: bool | None = None
    video: bool | None = None

    @model_validator(mode="after")
    def _names_something(self) -> SetMuteCommand:
        if self.audio is None and self.video is None:
            raise ValueError("give at least one of audio, video")
        return self


class SetVolumeCommand(_Command):
    """The speaker's master volume, or one participant's (by id, as the state lists them);
    1 plays as received, and a limiter follows."""

    command: Literal["set-volume"] = "set-volume"
    volume: float = Field(ge=0, le=4)
    participant: str | None = Field(default=None, min_length=1, max_length=128)


class SetCameraControlCommand(_Command):
    """Set one control of the camera (`vcalld devices` lists each camera's, with ranges);
    kept while the camera is unplugged and reopened. A menu takes its index or its label."""

    command: Literal["set-camera-control"] = "set-camera-control"
    control: ControlName
    value: ControlSetting


class GetStateCommand(_Command):
    command: Literal["get-state"] = "get-state"


Command = Annotated[
    JoinCommand
    | LeaveCommand
    | SetMuteCommand
    | SetVolumeCommand
    | SetCameraControlCommand
    | GetStateCommand,
    Field(discriminator="command"),
]
_command_adapter: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_NAMES = ("join", "leave", "set-mute", "set-volume", "set-camera-control", "get-state")


class ErrorInfo(BaseModel):
    code: str
    message: str


class CommandResult(BaseModel):
    ok: bool
    error: ErrorInfo | None = None
    state: DeviceState | None = None

    @classmethod
    def failure(cls, error: VcalldError) -> CommandResult:
        return cls(ok=False, error=ErrorInfo(code=error.code, message=str(error)))


def parse_command(name: str, arguments: Any) -> Command:
    """Validate a command named `name`; the error message names each offending field."""
    if name not in COMMAND_NAMES:
        raise InvalidCommandError(f"unknown command {name!r} (known: {', '.join(COMMAND_NAMES)})")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidCommandError("arguments must be a JSON object")
    if "command" in arguments and arguments["command"] != name:
        raise InvalidCommandError(f"command: {arguments['command']!r} does not match {name!r}")
    try:
        return _command_adapter.validate_python({**arguments, "command": name})
    except ValidationError as error:
        raise InvalidCommandError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False):
        location = ".".join(str(part) for part in detail["loc"][1:]) or "(arguments)"
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{location}: {message}")
    return "; ".join(problems)
