"""Every remote action as one validated model; transports only translate to and from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vcalld.config.models import (
    AudioProcessorEntry,
    ControlName,
    ControlSetting,
    ProcessorEntry,
    VideoProcessorEntry,
)
from vcalld.errors import InvalidCommandError, VcalldError
from vcalld.state import DeviceState

ROOM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinCommand(_Command):
    """Join `room`, or the configured room; leaves the current room first if it differs."""

    command: Literal["join"] = "join"
    room: str | None = Field(default=None, pattern=ROOM_PATTERN)
    video: bool | None = Field(
        default=None, description="Send video (false: a voice-only call); unset: as now."
    )


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


class SetVideoCommand(_Command):
    """Video on or off, live: off stops sending and the camera (unlike mute's black frames),
    on renegotiates every connection to send again."""

    command: Literal["set-video"] = "set-video"
    enabled: bool


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


Volume = Annotated[float, Field(ge=0, le=4)]


class StartAudioMixCommand(_Command):
    """Mix a file (a path or a name in `audio_mix.directories`) or an http(s) URL (under
    `audio_mix.url_prefixes`) into what the call hears and what the speaker plays; replaces
    the mix that plays. 1 is the source's own level; the sum with the voice is clipped."""

    command: Literal["start-audio-mix"] = "start-audio-mix"
    source: str = Field(min_length=1, max_length=4096)
    loops: Annotated[int, Field(ge=1)] | Literal["forever"] = 1
    call_volume: Volume = 1.0
    local_volume: Volume = 1.0
    position_seconds: float = Field(default=0.0, ge=0)


SET_AUDIO_MIX_FIELDS = ("paused", "position_seconds", "call_volume", "local_volume")


class SetAudioMixCommand(_Command):
    """Pause or resume, seek, or set the volumes of the mix that plays."""

    command: Literal["set-audio-mix"] = "set-audio-mix"
    paused: bool | None = None
    position_seconds: float | None = Field(default=None, ge=0)
    call_volume: Volume | None = None
    local_volume: Volume | None = None

    @model_validator(mode="after")
    def _names_something(self) -> SetAudioMixCommand:
        if all(getattr(self, name) is None for name in SET_AUDIO_MIX_FIELDS):
            raise ValueError(f"give at least one of {', '.join(SET_AUDIO_MIX_FIELDS)}")
        return self


class StopAudioMixCommand(_Command):
    command: Literal["stop-audio-mix"] = "stop-audio-mix"


class StartScreenShareCommand(_Command):
    """Send the screen (`[screen_share]`) instead of the camera, until stop-screen-share."""

    command: Literal["start-screen-share"] = "start-screen-share"


class StopScreenShareCommand(_Command):
    command: Literal["stop-screen-share"] = "stop-screen-share"


class StartRecordingCommand(_Command):
    """Record every remote participant from now on (`[recorder]` must allow it)."""

    command: Literal["start-recording"] = "start-recording"


class StopRecordingCommand(_Command):
    """Close every recording (the files stay, playable)."""

    command: Literal["stop-recording"] = "stop-recording"


ChainName = Literal["outgoing_video", "outgoing_audio", "incoming_video", "incoming_audio"]


class SetProcessorsCommand(_Command):
    """Replace one chain of frame processors, from its next frame (incoming chains: for
    every participant); [] empties it. Entries are as in `[processors]`."""

    command: Literal["set-processors"] = "set-processors"
    chain: ChainName
    processors: list[ProcessorEntry] = Field(max_length=16)

    @field_validator("processors", mode="before")
    @classmethod
    def _of_the_chains_kind(cls, entries: Any, info: ValidationInfo) -> Any:
        chain = info.data.get("chain")
        if chain is None or not isinstance(entries, list):
            return entries
        model = VideoProcessorEntry if chain.endswith("video") else AudioProcessorEntry
        checked = []
        for index, entry in enumerate(entries):
            try:
                checked.append(model.model_validate(entry))
            except ValidationError as error:
                detail = error.errors(include_url=False)[0]
                where = ".".join(str(part) for part in detail["loc"])
                message = str(detail["msg"]).removeprefix("Value error, ")
                raise ValueError(f"[{index}]{'.' + where if where else ''}: {message}") from None
        return checked


class GetStateCommand(_Command):
    command: Literal["get-state"] = "get-state"


Command = Annotated[
    JoinCommand
    | LeaveCommand
    | SetMuteCommand
    | SetVideoCommand
    | SetVolumeCommand
    | SetCameraControlCommand
    | StartAudioMixCommand
    | SetAudioMixCommand
    | StopAudioMixCommand
    | SetProcessorsCommand
    | StartScreenShareCommand
    | StopScreenShareCommand
    | StartRecordingCommand
    | StopRecordingCommand
    | GetStateCommand,
    Field(discriminator="command"),
]
_command_adapter: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_NAMES = (
    "join",
    "leave",
    "set-mute",
    "set-video",
    "set-volume",
    "set-camera-control",
    "start-audio-mix",
    "set-audio-mix",
    "stop-audio-mix",
    "set-processors",
    "start-screen-share",
    "stop-screen-share",
    "start-recording",
    "stop-recording",
    "get-state",
)


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
