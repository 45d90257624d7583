"""The audio mix commands: at most one mix at a time, its decoder an owned task, its progress
in the state (`audio_mix`), how it ended there too (and so in the events)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from av import AudioFrame

from vcalld.commands import SetAudioMixCommand, StartAudioMixCommand
from vcalld.config.models import AudioMixConfig
from vcalld.errors import InvalidCommandError, NoAudioMixError
from vcalld.media.audio_mix.decoder import MixDecoder
from vcalld.media.audio_mix.player import MixPlayer, MixSpeaker
from vcalld.media.audio_mix.sources import resolve_source
from vcalld.state import StateStore

log = logging.getLogger(__name__)


class AudioMixer:
    def __init__(
        self, config: AudioMixConfig, speaker: MixSpeaker | None, state: StateStore
    ) -> None:
        self._config = config
        self._speaker = speaker
        self._state = state
        self._player: MixPlayer | None = None
        self._task: asyncio.Task[None] | None = None

    def mix_into(self, frame: AudioFrame) -> AudioFrame:
        """The outgoing audio's hook: `frame` with the mix added, if one plays."""
        return frame if self._player is None else self._player.mix_into(frame)

    async def start(self, command: StartAudioMixCommand, tasks: asyncio.TaskGroup) -> None:
        source = resolve_source(command.source, self._config)
        await self.stop()
        loops = None if command.loops == "forever" else command.loops
        decoder = MixDecoder(source, loops, command.position_seconds)
        player = MixPlayer(
            decoder,
            self._speaker,
            call_volume=command.call_volume,
            local_volume=command.local_volume,
            changed=self._publish,
        )
        self._player = player
        self._task = tasks.create_task(self._decode(player), name="audio-mix")
        log.info("audio mix: playing %s", source.shown)
        self._publish()

    def set(self, command: SetAudioMixCommand) -> None:
        player = self._player
        if player is None or player.status.ended:
            raise NoAudioMixError("no audio mix is playing (start-audio-mix starts one)")
        duration = player.decoder.duration
        position = command.position_seconds
        if position is not None and duration is not None and position > duration:
            raise InvalidCommandError(
                f"position_seconds: {position} is past the end ({duration:.1f} s)"
            )
        if command.call_volume is not None or command.local_volume is not None:
            player.set_volumes(command.call_volume, command.local_volume)
        if position is not None:
            player.seek(position)
        if command.paused is not None:
            player.pause(command.paused)

    async def stop(self) -> None:
        """Stop the mix that plays, if any; its state stays, as stopped."""
        player, task, self._task = self._player, self._task, None
        if player is not None:
            player.stop()
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _decode(self, player: MixPlayer) -> None:
        """A bug in decoding ends this mix, logged and in the state; the call goes on."""
        try:
            await player.decoder.run()
        except Exception as error:
            log.exception("audio mix of %s failed", player.decoder.source.shown)
            player.fail(f"internal error: {error}")

    def _publish(self) -> None:
        player = self._player
        if player is None:
            return
        mix = player.snapshot()
        if mix.status.ended and mix != self._state.current.audio_mix:
            log.info("audio mix of %s %s: %s", mix.source, mix.status, mix.error or "")
        self._state.update(audio_mix=mix)
