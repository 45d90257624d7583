"""The audio mix: a file or stream added to what the call hears and what the speaker plays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from av import AudioFrame

from tests.echo import DOUBLE_TALK, FAR_GAIN, NEAR_GAIN, Heard, measure
from tests.helpers import eventually, recording_events, running, serving
from tests.mix_media import tone_levels, write_samples, write_tones
from tests.mqtt import Mosquitto
from tests.soundcard import PipeSoundCard, Room, Tape
from tests.speech import FAR_END, NEAR_END, speech
from tests.test_alsa import analyse
from tests.test_mqtt import DEVICE, controller, mqtt_section, next_event, next_state
from vcalld.commands import (
    SetAudioMixCommand,
    StartAudioMixCommand,
    StopAudioMixCommand,
    parse_command,
)
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.errors import InvalidCommandError
from vcalld.media.audio_mix.player import MIX_STREAM
from vcalld.room.server import RoomServer
from vcalld.state import AudioMix, AudioMixStatus

MIC_HZ, MIX_HZ, LATER_HZ = 440.0, 1000.0, 660.0
SOURCE_LEVEL = 20 * np.log10(0.3 / np.sqrt(2))  # the tone source and the files: -13.5 dBFS
ROOM = Room(delay=0.06, gain=0.4)  # as in test_voice: some output latency, a loud speaker


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


def mix_of(daemon: Daemon) -> AudioMix:
    mix = daemon.state.current.audio_mix
    assert mix is not None
    return mix


def far_levels(listener: Daemon) -> dict[float, float]:
    (participant,) = listener.state.current.participants
    signal = listener.renderer.audio_timeline(participant.id)  # type: ignore[attr-defined]
    assert signal is not None
    return tone_levels(signal, 48000, (MIC_HZ, MIX_HZ))


async def test_the_far_end_hears_the_mix_with_the_microphone_at_the_set_level(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig], media: Path
) -> None:
    write_tones(media / "chime.flac", [(MIX_HZ, 2.0)])  # 44.1 kHz stereo: resampled
    mixing = daemon_config(
        room_server,
        "dev-a",
        video={"enabled": False},
        audio={"tone_frequency_hz": MIC_HZ},
        audio_mix={"directories": [str(media)]},
    )
    listening = daemon_config(room_server, "dev-b", video={"enabled": False})
    async with running(mixing) as a, running(listening) as b, recording_events(a) as events:
        await eventually(lambda: b.state.current.participants, 10)
        # The voice alone, once its playout has settled: a call's first seconds may still
        # hold frames made up while the delay rose (under CI's load: -15.1 and -14.8 dB of
        # -13.5, then -13.5 once settled).
        await eventually(lambda: b.renderer.snapshot().popitem()[1]["audio"]["coverage"] == 1, 5)
        await eventually(lambda: abs(far_levels(b)[MIC_HZ] - SOURCE_LEVEL) < 0.5, 10)
        alone = far_levels(b)
        start = StartAudioMixCommand(source="chime.flac", loops="forever", call_volume=0.5)
        assert (await a.execute(start)).ok
        await eventually(lambda: far_levels(b)[MIX_HZ] > alone[MIX_HZ] + 30, 10)
        await asyncio.sleep(0.5)
        mixed = far_levels(b)
        playing = mix_of(a)

        assert (await a.execute(SetAudioMixCommand(paused=True))).ok
        await eventually(lambda: far_levels(b)[MIX_HZ] < mixed[MIX_HZ] - 30, 5)
        paused_at = mix_of(a).position_seconds
        await asyncio.sleep(1.0)
        paused = mix_of(a)
        assert (await a.execute(SetAudioMixCommand(paused=False))).ok
        await eventually(lambda: far_levels(b)[MIX_HZ] > mixed[MIX_HZ] - 1.5, 5)
        await eventually(lambda: mix_of(a).loop >= 2, 5)
        assert (await a.execute(StopAudioMixCommand())).ok
        await eventually(lambda: far_levels(b)[MIX_HZ] < mixed[MIX_HZ] - 30, 5)
        stopped = mix_of(a)
    assert alone[MIC_HZ] == pytest.approx(SOURCE_LEVEL, abs=1.5), alone
    # Both tones at once, each at its level: the voice as before, the mix 6 dB down.
    assert mixed[MIC_HZ] == pytest.approx(alone[MIC_HZ], abs=1.0), (alone, mixed)
    assert mixed[MIX_HZ] - mixed[MIC_HZ] == pytest.approx(-6.0, abs=1.0), mixed
    assert playing.status is AudioMixStatus.PLAYING
    assert (playing.source, playing.duration_seconds, playing.loops) == (
        str((media / "chime.flac").resolve()),
        2.0,
        None,
    )
    assert (paused.status, paused.position_seconds) == (AudioMixStatus.PAUSED, paused_at)
    assert stopped.status is AudioMixStatus.STOPPED
    ended = [event for event in events if event["event"] == "audio-mix-ended"]
    assert ended == [
        {"event": "audio-mix-ended", "source": stopped.source, "status": "stopped", "error": None}
    ]


@pytest.fixture
def speaker_card(card: PipeSoundCard) -> Iterator[PipeSoundCard]:
    card.plug("speaker")
    yield card
    card.close()


async def played(tape: Tape, after: float = 0.3) -> tuple[float, float]:
    """(frequency, level) of the left channel over the last half second, `after` seconds
    from now (what the speaker's FIFO and the device's buffer hold is played by then)."""
    await asyncio.sleep(after + 0.5)
    return analyse(tape.latest(0.5), 48000, 2)[0]


def assert_tone(measured: tuple[float, float], frequency: float, level: float) -> None:
    assert measured[0] == pytest.approx(frequency, abs=2), measured
    assert measured[1] == pytest.approx(level, abs=1), measured


async def test_the_speaker_plays_the_mix_at_its_own_volume_seeks_and_plays_it_out(
    speaker_card: PipeSoundCard, daemon_config: Callable[..., VcalldConfig], media: Path
) -> None:
    write_tones(media / "two-tones.wav", [(MIX_HZ, 3.0), (LATER_HZ, 3.0)], channels=1)
    config = daemon_config(
        None,
        "dev-a",
        video={"enabled": False},
        speaker={"enabled": True, "device": speaker_card.SPEAKER},
        audio_mix={"directories": [str(media)]},
    )
    async with running(config) as daemon, recording_events(daemon) as events:
        with speaker_card.taping(48000, 2) as tape:
            silent = await played(tape)
            start = StartAudioMixCommand(
                source=str(media / "two-tones.wav"), call_volume=0.0, local_volume=0.5
            )
            assert (await daemon.execute(start)).ok
            await eventually(lambda: mix_of(daemon).status is AudioMixStatus.PLAYING, 5)
            first = await played(tape)
            assert (await daemon.execute(SetAudioMixCommand(local_volume=1.0))).ok
            louder = await played(tape)
            assert (await daemon.execute(SetAudioMixCommand(position_seconds=4.5))).ok
            sought = mix_of(daemon).position_seconds
            later = await played(tape)
            await eventually(lambda: mix_of(daemon).status.ended, 5)
            finished = mix_of(daemon)
            after = await played(tape)
            speaker = daemon.speaker.snapshot()  # type: ignore[union-attr]
    assert silent[1] == -100.0
    assert_tone(first, MIX_HZ, SOURCE_LEVEL - 6)
    assert_tone(louder, MIX_HZ, SOURCE_LEVEL)
    assert sought == 4.5
    assert_tone(later, LATER_HZ, SOURCE_LEVEL)
    assert finished.status is AudioMixStatus.FINISHED
    assert finished.position_seconds == pytest.approx(6.0, abs=0.1)
    assert after[1] == -100.0
    assert speaker[MIX_STREAM]["dropped_ms"] == 0, speaker  # paced by the source, not ahead
    assert [event["status"] for event in events if event["event"] == "audio-mix-ended"] == [
        "finished"
    ]


@asynccontextmanager
async def media_server(wav: bytes) -> AsyncIterator[str]:
    """http://127.0.0.1:port/media/ with `chime.wav`, and `broken.wav` whose connection drops
    after half of it."""

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Length": str(len(wav)), "Content-Type": "audio/wav"}
        )
        await response.prepare(request)
        await response.write(wav[: len(wav) // 2])
        await asyncio.sleep(0.5)
        assert request.transport is not None
        request.transport.close()
        return response

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=wav, content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/media/chime.wav", whole)
    app.router.add_get("/media/broken.wav", broken)
    async with serving(app) as url:
        yield f"{url}/media/"


async def test_a_stream_plays_its_loops_and_one_that_breaks_or_is_missing_ends_the_mix_only(
    daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    wav = write_tones(tmp_path / "chime.wav", [(MIX_HZ, 1.0)]).read_bytes()
    async with media_server(wav) as prefix:
        config = daemon_config(
            None, "dev-a", video={"enabled": False}, audio_mix={"url_prefixes": [prefix]}
        )
        async with running(config) as daemon, recording_events(daemon) as events:
            start = StartAudioMixCommand(source=f"{prefix}chime.wav?token=secret", loops=2)
            assert (await daemon.execute(start)).ok
            await eventually(lambda: mix_of(daemon).loop == 2, 5)
            await eventually(lambda: mix_of(daemon).status.ended, 5)
            looped = mix_of(daemon)
            assert (await daemon.execute(StartAudioMixCommand(source=f"{prefix}broken.wav"))).ok
            await eventually(lambda: mix_of(daemon).status.ended, 10)
            broken = mix_of(daemon)
            assert (await daemon.execute(StartAudioMixCommand(source=f"{prefix}gone.wav"))).ok
            await eventually(lambda: mix_of(daemon).status.ended, 10)
            missing = mix_of(daemon)
            assert daemon.health_problem() is None
            outside = await daemon.execute(StartAudioMixCommand(source=prefix + "../x.wav"))
            other_host = await daemon.execute(
                StartAudioMixCommand(source="http://127.0.0.2/media/chime.wav")
            )
    assert (looped.status, looped.position_seconds, looped.duration_seconds) == (
        AudioMixStatus.FINISHED,
        1.0,
        1.0,
    )
    assert looped.source == f"{prefix}chime.wav"  # the query may hold a credential
    assert broken.status is AudioMixStatus.FAILED
    assert broken.error is not None and "broke off" in broken.error, broken
    assert 0.2 < broken.position_seconds < 0.8, broken
    assert missing.status is AudioMixStatus.FAILED
    assert missing.error is not None and "404" in missing.error, missing
    assert [
        (e["status"], e["error"] is None) for e in events if e["event"] == "audio-mix-ended"
    ] == [
        ("finished", True),
        ("failed", False),
        ("failed", False),
    ]
    for refused in (outside, other_host):
        assert refused.error is not None and refused.error.code == "invalid-command", refused
        assert refused.error.message.startswith("source: "), refused
    assert "audio_mix.url_prefixes" in other_host.error.message  # type: ignore[union-attr]


async def test_only_files_in_the_configured_directories_are_played(
    daemon_config: Callable[..., VcalldConfig], media: Path, tmp_path: Path
) -> None:
    secret = write_tones(tmp_path / "secret.wav", [(MIX_HZ, 1.0)])
    (media / "link.wav").symlink_to(secret)
    (media / "notes.txt").write_text("not audio\n")
    config = daemon_config(
        None, "dev-a", video={"enabled": False}, audio_mix={"directories": [str(media)]}
    )
    async with running(config) as daemon:
        refusals = {
            spec: await daemon.execute(StartAudioMixCommand(source=spec))
            for spec in (
                str(secret),
                "../secret.wav",
                "link.wav",
                "absent.wav",
                "file:///etc/passwd",
            )
        }
        assert daemon.state.current.audio_mix is None
        assert (await daemon.execute(StartAudioMixCommand(source="notes.txt"))).ok
        await eventually(lambda: mix_of(daemon).status.ended, 5)
        not_audio = mix_of(daemon)
        without_mix = await daemon.execute(SetAudioMixCommand(paused=True))
    for spec, result in refusals.items():
        assert result.error is not None and result.error.code == "invalid-command", (spec, result)
        assert result.error.message.startswith("source: "), result
    assert "no such file" in refusals["absent.wav"].error.message  # type: ignore[union-attr]
    assert not_audio.status is AudioMixStatus.FAILED and not_audio.error, not_audio
    assert without_mix.error is not None and without_mix.error.code == "no-audio-mix"


async def test_a_mix_needs_outgoing_audio_to_ride_on(
    daemon_config: Callable[..., VcalldConfig], media: Path
) -> None:
    write_tones(media / "chime.wav", [(MIX_HZ, 1.0)])
    config = daemon_config(
        None, "dev-a", audio={"enabled": False}, audio_mix={"directories": [str(media)]}
    )
    async with running(config) as daemon:
        result = await daemon.execute(StartAudioMixCommand(source="chime.wav"))
    assert result.error is not None and result.error.code == "no-audio", result


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("start-audio-mix", {}, "source: Field required"),
        ("start-audio-mix", {"source": "a.wav", "loops": 0}, "loops"),
        ("start-audio-mix", {"source": "a.wav", "call_volume": 5}, "call_volume"),
        ("set-audio-mix", {}, "give at least one of paused, position_seconds"),
        ("set-audio-mix", {"position_seconds": -1}, "position_seconds"),
    ],
)
def test_malformed_mix_commands_name_the_field(
    name: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidCommandError) as raised:
        parse_command(name, arguments)
    assert message in str(raised.value)


async def test_the_speakers_mix_is_cancelled_from_the_microphone(
    card: PipeSoundCard, daemon_config: Callable[..., VcalldConfig], media: Path
) -> None:
    """The speaker plays the mix into the test's room, the microphone hears it with a local
    talker: the mix is in the echo canceller's reference, so the microphone sends the talker
    and not the mix's echo (the far end gets the mix only as `call_volume` adds it)."""
    music = FAR_GAIN * speech(FAR_END, 48000)
    near = NEAR_GAIN * speech(NEAR_END, 48000, "en+f3", 70)
    write_samples(media / "announcement.wav", music, 48000)
    card.plug("mic")
    card.plug("speaker")
    config = daemon_config(
        None,
        "dev-a",
        video={"enabled": False},
        audio={"source": "alsa", "device": card.MIC, "sample_rate": 48000},
        speaker={"enabled": True, "device": card.SPEAKER},
        voice={"noise_suppression": False, "gain_control": False, "high_pass_filter": False},
        audio_mix={"directories": [str(media)]},
    )
    async with running(config) as daemon:
        outgoing = daemon.outgoing.local_media().audio
        assert outgoing is not None
        track = outgoing()
        sent: list[np.ndarray] = []

        async def collect() -> None:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                sent.append(frame.to_ndarray().reshape(-1))

        near_at = len(music) / 48000 - DOUBLE_TALK
        with card.echoing(48000, 2, ROOM, near, near_at) as written:
            collecting = asyncio.create_task(collect())
            start = StartAudioMixCommand(source="announcement.wav", call_volume=0.0)
            assert (await daemon.execute(start)).ok
            await asyncio.sleep(near_at + len(near) / 48000 + 0.5)
            collecting.cancel()
        mix = mix_of(daemon)
    heard = Heard(
        np.concatenate([parts[0] for parts in written]),
        np.concatenate([parts[1] for parts in written]),
        48000,
    )
    result = measure(heard, np.concatenate(sent) / 32768.0, 48000)
    assert mix.status is AudioMixStatus.FINISHED, mix
    assert result.erle_db >= 20, result
    assert result.near_correlation > 0.9, result
    assert abs(result.near_gain_db) < 3, result


async def test_a_fleet_plays_a_mix_over_mqtt_and_hears_how_it_ends(
    mosquitto: Mosquitto, daemon_config: Callable[..., VcalldConfig], media: Path
) -> None:
    write_tones(media / "chime.mp3", [(MIX_HZ, 2.0)])
    config = daemon_config(
        None,
        "kiosk",
        video={"enabled": False},
        mqtt=mqtt_section(mosquitto),
        audio_mix={"directories": [str(media)]},
    )
    async with running(config), controller(mosquitto) as fleet:
        await fleet.subscribe(f"{DEVICE}/event")
        await fleet.subscribe(f"{DEVICE}/state")
        refused = await fleet.request(DEVICE, "start-audio-mix", {"source": "/etc/passwd"})
        started = await fleet.request(DEVICE, "start-audio-mix", {"source": "chime.mp3"})
        halfway = await next_state(
            fleet, lambda s: (s["audio_mix"] or {}).get("position_seconds", 0) >= 1
        )
        ended = await next_event(fleet, "audio-mix-ended")
    assert refused["ok"] is False and refused["error"]["code"] == "invalid-command", refused
    assert refused["error"]["message"].startswith("source: '/etc/passwd': not a file"), refused
    assert started["ok"] and started["state"]["audio_mix"]["status"] == "opening", started
    assert halfway["audio_mix"]["status"] == "playing"
    assert halfway["audio_mix"]["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert ended == {
        "event": "audio-mix-ended",
        "source": str((media / "chime.mp3").resolve()),
        "status": "finished",
        "error": None,
    }
