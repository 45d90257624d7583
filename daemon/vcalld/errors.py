"""One exception hierarchy; each error's `code` is what command replies carry."""

from __future__ import annotations


class VcalldError(Exception):
    code = "error"


class InvalidCommandError(VcalldError):
    code = "invalid-command"


class NotInCallError(VcalldError):
    code = "not-in-call"


class UnknownParticipantError(VcalldError):
    code = "unknown-participant"


class NoSpeakerError(VcalldError):
    code = "no-speaker"


class NoAudioMixError(VcalldError):
    code = "no-audio-mix"


class NoOutgoingAudioError(VcalldError):
    code = "no-audio"


class NoVideoError(VcalldError):
    code = "no-video"


class NoRecorderError(VcalldError):
    code = "no-recorder"


class NoCameraError(VcalldError):
    code = "no-camera"


class CameraUnavailableCommandError(VcalldError):
    code = "camera-unavailable"


class InvalidControlError(VcalldError):
    code = "invalid-control"


class ShuttingDownError(VcalldError):
    code = "shutting-down"


class ExpiredCommandError(VcalldError):
    code = "expired"


class BusyError(VcalldError):
    code = "busy"


class InternalError(VcalldError):
    code = "internal-error"
