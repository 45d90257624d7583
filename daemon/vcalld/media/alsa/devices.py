"""What ALSA offers on this machine, for `vcalld devices` and for choosing `audio.device`."""

from __future__ import annotations

from dataclasses import dataclass

import alsaaudio


@dataclass(frozen=True)
class SoundCard:
    index: int
    id: str  # what `audio.device` / `speaker.device` accept as a card
    name: str


@dataclass(frozen=True)
class AudioDevices:
    cards: list[SoundCard]
    capture: list[str]  # PCM names
    playback: list[str]


def list_audio_devices() -> AudioDevices:
    ids = alsaaudio.cards()
    cards = [
        SoundCard(index, ids[position], alsaaudio.card_name(index)[1])
        for position, index in enumerate(alsaaudio.card_indexes())
    ]
    return AudioDevices(
        cards=cards,
        capture=alsaaudio.pcms(alsaaudio.PCM_CAPTURE),
        playback=alsaaudio.pcms(alsaaudio.PCM_PLAYBACK),
    )


def describe(devices: AudioDevices) -> str:
    lines = ["Sound cards (a card id works as audio.device or speaker.device):"]
    lines += [f"  {card.id:<16} card {card.index}: {card.name}" for card in devices.cards] or [
        "  (none)"
    ]
    for title, names in (
        ("Capture PCMs (audio.device)", devices.capture),
        ("Playback PCMs (speaker.device)", devices.playback),
    ):
        lines.append(f"{title}:")
        lines += [f"  {name}" for name in names] or ["  (none)"]
    return "\n".join(lines)
