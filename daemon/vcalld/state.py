"""The single source of truth about the device, and the one place that announces changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


class CallState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    IN_CALL = "in-call"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class Participant(BaseModel):
    id: str
    name: str
    connection: str = "new"


SCREEN_SUFFIX = "#screen"  # room servers and Janus make no ids with "#"


def screen_of(participant_id: str) -> str:
    """The key a participant's shared screen (a second video track) is rendered under."""
    return participant_id + SCREEN_SUFFIX


def sharer_of(key: str) -> str | None:
    """The participant whose screen `key` is, or None for a participant's own key."""
    return key.removesuffix(SCREEN_SUFFIX) if key.endswith(SCREEN_SUFFIX) else None


class AudioMixStatus(StrEnum):
    OPENING = "opening"
    PLAYING = "playing"
    PAUSED = "paused"
    FINISHED = "finished"  # the last loop played to its end
    STOPPED = "stopped"  # by a command
    FAILED = "failed"  # the file or stream could not be read: `error` says why

    @property
    def ended(self) -> bool:
        return self in (AudioMixStatus.FINISHED, AudioMixStatus.STOPPED, AudioMixStatus.FAILED)


class AudioMix(BaseModel):
    """The audio mix of the moment, or the last one with how it ended."""

    source: str  # a URL without credentials or query
    status: AudioMixStatus
    position_seconds: float = 0.0
    duration_seconds: float | None = None  # None for a live stream
    loop: int = 1
    loops: int | None = 1  # None: for ever
    call_volume: float = 1.0
    local_volume: float = 1.0
    error: str | None = None


class DisabledProcessor(BaseModel):
    """A frame processor that raised and was taken out of its chain; the media go on."""

    chain: str  # outgoing_video, outgoing_audio, incoming_video, incoming_audio
    name: str
    participant: str | None = None  # whose incoming media, for an incoming chain
    error: str


class DeviceState(BaseModel):
    device_id: str
    call: CallState = CallState.IDLE
    room: str | None = None
    participants: list[Participant] = Field(default_factory=list)
    audio_muted: bool = False
    video_muted: bool = False
    video_enabled: bool = False  # sent at all: false in a voice-only call (set-video)
    video_source: str | None = None  # "screen" while the screen is shared
    audio_source: str | None = None
    last_error: str | None = None
    # Why a source or the speaker cannot deliver ("microphone unavailable: …"); None when fine.
    audio_source_problem: str | None = None
    video_source_problem: str | None = None
    speaker_problem: str | None = None
    display_problem: str | None = None
    # The broker connection: "connected", or why not ("unreachable: ...", "refused: ...",
    # "lost: ..."); None without MQTT. Seen locally and in the journal while the fleet cannot.
    mqtt: str | None = None
    audio_mix: AudioMix | None = None
    recording: bool = False  # remote participants are being recorded ([recorder])
    # The frame processors of each chain, by name, in order ([processors], set-processors).
    processors: dict[str, list[str]] = Field(default_factory=dict)
    disabled_processors: list[DisabledProcessor] = Field(default_factory=list)


Listener = Callable[[DeviceState], None]


class StateStore:
    """Holds `DeviceState`; every change notifies listeners (MQTT, systemd STATUS, vcallctl)."""

    def __init__(self, initial: DeviceState) -> None:
        self._state = initial
        self._listeners: list[Listener] = []

    @property
    def current(self) -> DeviceState:
        return self._state

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def update(self, **changes: Any) -> None:
        updated = self._state.model_copy(update=changes)
        if updated == self._state:
            return
        self._state = updated
        for listener in list(self._listeners):  # a listener may unlisten while notified
            listener(updated)

    def set_participant(self, participant: Participant) -> None:
        others = [p for p in self._state.participants if p.id != participant.id]
        self.update(participants=[*others, participant])

    def remove_participant(self, participant_id: str) -> None:
        self.update(participants=[p for p in self._state.participants if p.id != participant_id])
