"""Facts worth telling a fleet, derived from consecutive states so no code path can forget one."""

from __future__ import annotations

from typing import Any

from vcalld.state import CallState, DeviceState

ACTIVE = (CallState.IN_CALL, CallState.RECONNECTING)


def state_events(before: DeviceState, after: DeviceState) -> list[dict[str, Any]]:
    """Events for the change from `before` to `after`, in a stable order."""
    events: list[dict[str, Any]] = []
    known = {p.id: p for p in before.participants}
    now = {p.id: p for p in after.participants}
    for participant_id in sorted(now.keys() - known.keys()):
        participant = now[participant_id]
        events.append(
            {"event": "participant-joined", "id": participant.id, "name": participant.name}
        )
    for participant_id in sorted(known.keys() - now.keys()):
        participant = known[participant_id]
        events.append({"event": "participant-left", "id": participant.id, "name": participant.name})
    if before.call in ACTIVE and after.call in (CallState.IDLE, CallState.FAILED):
        events.append({"event": "call-ended", "room": before.room, "state": after.call.value})
    if after.call is CallState.IN_CALL and before.call is not CallState.IN_CALL:
        events.append({"event": "call-started", "room": after.room})
    mix, mixed = after.audio_mix, before.audio_mix
    if mix is not None and mix.status.ended and (mixed is None or not mixed.status.ended):
        events.append(
            {
                "event": "audio-mix-ended",
                "source": mix.source,
                "status": mix.status.value,
                "error": mix.error,
            }
        )
    for disabled in after.disabled_processors:
        if disabled not in before.disabled_processors:
            events.append({"event": "processor-disabled", **disabled.model_dump()})
    if after.last_error and after.last_error != before.last_error:
        events.append({"event": "error", "message": after.last_error})
    return events
