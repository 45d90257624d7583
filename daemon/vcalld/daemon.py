"""The supervisor: wires sources, call backend and renderer; owns every task; runs commands."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from vcalld.call import aiortc_hooks
from vcalld.call.backends import make_backend
from vcalld.call.ice import restrict_host_addresses
from vcalld.call.stats import StatsSampler
from vcalld.commands import (
    Command,
    CommandResult,
    GetStateCommand,
    JoinCommand,
    LeaveCommand,
    SetAudioMixCommand,
    SetCameraControlCommand,
    SetMuteCommand,
    SetProcessorsCommand,
    SetVideoCommand,
    SetVolumeCommand,
    StartAudioMixCommand,
    StartRecordingCommand,
    StartScreenShareCommand,
    StopAudioMixCommand,
    StopRecordingCommand,
    StopScreenShareCommand,
)
from vcalld.config import VcalldConfig
from vcalld.config.models import ProcessorEntry
from vcalld.errors import (
    CameraUnavailableCommandError,
    InvalidControlError,
    NoCameraError,
    NoOutgoingAudioError,
    NoRecorderError,
    NoSpeakerError,
    NoVideoError,
    ShuttingDownError,
    UnknownParticipantError,
    VcalldError,
)
from vcalld.media.audio_mix.controller import AudioMixer
from vcalld.media.camera.device import CameraUnavailableError, ControlError, ControlValue
from vcalld.media.fanout import split
from vcalld.media.outgoing import OutgoingMedia
from vcalld.media.processors.chain import ChainSpec, Disabled, ProcessorChain
from vcalld.media.processors.stages import ProcessedTrack
from vcalld.media.sinks.base import Renderer, ScreenRenderer, load_renderer
from vcalld.media.sinks.recorder import Recorder
from vcalld.media.sinks.speaker import Speaker
from vcalld.media.sources.base import AdjustableCamera, VideoSource
from vcalld.media.sources.screen import ScreenSource
from vcalld.media.voice.processor import process_microphone
from vcalld.state import (
    CallState,
    DeviceState,
    DisabledProcessor,
    Participant,
    StateStore,
    screen_of,
    sharer_of,
)

log = logging.getLogger(__name__)
UPLOAD = "@upload"  # not a participant id: the room server and Janus make none with "@"


class Daemon:
    def __init__(
        self,
        config: VcalldConfig,
        renderer: Renderer | None = None,
        video_source: VideoSource | None = None,
    ) -> None:
        self.config = config
        self.outgoing = OutgoingMedia(config, video_source, self._processor_disabled)
        self.renderer = renderer or load_renderer(config.display.renderer, config)
        self.voice = process_microphone(config, self.outgoing.audio_source)
        self.speaker = (
            Speaker(
                config.speaker,
                functools.partial(self._problem_changed, "speaker_problem"),
                self.voice,
            )
            if config.speaker.enabled
            else None
        )
        self.recorder = Recorder(config, self._name_of) if config.recorder.enabled else None
        self._incoming_chains = {
            "video": ChainSpec(config.processors.incoming_video),
            "audio": ChainSpec(config.processors.incoming_audio),
        }
        self.state = StateStore(
            DeviceState(
                device_id=config.device.id,
                processors=_chain_names(self._chains()),
                recording=self.recorder is not None and self.recorder.recording,
                video_enabled=self.outgoing.video_enabled,
                video_source=config.video.source if config.video.enabled else None,
                audio_source=config.audio.source if config.audio.enabled else None,
            )
        )
        if self.recorder is not None:
            self.state.listen(self.recorder.show_state)
        self.audio_mixer = AudioMixer(config.audio_mix, self.speaker, self.state)
        self.outgoing.audio_mix = self.audio_mixer.mix_into
        self._backend = make_backend(
            config.call, config.device.display_name, self.outgoing.local_media(), self
        )
        self._stats = StatsSampler()
        self._tasks: asyncio.TaskGroup | None = None
        self._call: asyncio.Task[None] | None = None
        self._call_room: str | None = None
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._screen_share: asyncio.Task[None] | None = None

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Run until `stop()`; a failing source ends the run with its exception."""
        restrict_host_addresses(self.config.call.ice_host_addresses)
        aiortc_hooks.install(self._backend.voice, self.outgoing.encodings["video"].bitrates)
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            runners = self.outgoing.runners(self._source_problem)
            if self.speaker is not None:
                runners["speaker"] = self.speaker.run()
            runners |= self._screen_runners()
            self._workers = [
                tasks.create_task(runner, name=name) for name, runner in runners.items()
            ]
            if self.config.call.auto_join:
                await self.execute(JoinCommand())
            if on_ready is not None:
                on_ready()
            await self._stop.wait()
            await self._end_call()
            await self.audio_mixer.stop()
            await self._stop_screen_share()
            if self.recorder is not None:
                await self.recorder.stop()
            for worker in self._workers:
                worker.cancel()
        self._tasks = None

    def stop(self) -> None:
        self._stop.set()

    def _screen_runners(self) -> dict[str, Coroutine[Any, Any, None]]:
        """A renderer with a screen: its thread, the call it follows, the self view."""
        screen = self.renderer
        if not isinstance(screen, ScreenRenderer):
            return {}
        self.state.listen(screen.show_state)
        screen.show_state(self.state.current)
        runners = {
            "display": screen.run(functools.partial(self._problem_changed, "display_problem"))
        }
        local_video = self.outgoing.preview()
        if self.config.display.self_view and local_video is not None:
            runners["self-view"] = screen.render_local(local_video())
        return runners

    def health_problem(self) -> str | None:
        """Why the daemon should not pass for alive (systemd's watchdog), or None."""
        for worker in self._workers:
            if worker.done():
                return f"media worker {worker.get_name()} stopped"
        return None

    def media(self) -> dict[str, Any]:
        """Per remote participant: what the renderer shows, the speaker plays and the
        recorder writes."""
        media = self.renderer.snapshot()
        if self.speaker is not None:
            for participant_id, playing in self.speaker.snapshot().items():
                media.setdefault(participant_id, {})["speaker"] = playing
        if self.recorder is not None:
            for participant_id, recorded in self.recorder.snapshot().items():
                media.setdefault(participant_id, {}).update(recorded)
        return media

    async def call_stats(self) -> dict[str, Any]:
        """Per remote participant: what arrives (fps, size) and how the network carries it."""
        state = self.state.current
        connections = self._backend.peer_connections()
        upload = self._backend.upload_connection()
        if upload is not None:
            connections = {**connections, UPLOAD: upload}
        network = await self._stats.sample(connections)
        uploaded = network.pop(UPLOAD, None)
        media = self.renderer.snapshot()
        names = {participant.id: participant.name for participant in state.participants}
        participants = []
        for participant_id, quality in network.items():
            video = media.get(participant_id, {}).get("video", {})
            participants.append(
                {
                    "id": participant_id,
                    "name": names.get(participant_id, participant_id),
                    "fps": video.get("fps"),
                    "width": video.get("width"),
                    "height": video.get("height"),
                    **quality,
                }
            )
        return {
            "call": state.call.value,
            "room": state.room,
            "participants": participants,
            # Through an SFU our media go up once: that connection's rates, for everyone.
            "upload": _upload_summary(uploaded),
        }

    async def execute(self, command: Command) -> CommandResult:
        """Run one command; every outcome, including failure, is a result, never an exception."""
        try:
            await self._dispatch(command)
        except VcalldError as error:
            return CommandResult.failure(error)
        return CommandResult(ok=True, state=self.state.current)

    async def _dispatch(self, command: Command) -> None:  # noqa: PLR0912 - a flat table of commands
        if self._stop.is_set() and not isinstance(command, GetStateCommand):
            raise ShuttingDownError("the daemon is shutting down")
        if isinstance(command, JoinCommand):
            if command.video is not None:
                await self._set_video(command.video)
            await self._join(command.room or self.config.call.room)
        elif isinstance(command, LeaveCommand):
            await self._end_call()
        elif isinstance(command, SetMuteCommand):
            if command.audio is not None:
                self.outgoing.audio_muted = command.audio
            if command.video is not None:
                self.outgoing.video_muted = command.video
            self.state.update(
                audio_muted=self.outgoing.audio_muted, video_muted=self.outgoing.video_muted
            )
        elif isinstance(command, SetVideoCommand):
            await self._set_video(command.enabled)
        elif isinstance(command, SetVolumeCommand):
            self._set_volume(command.participant, command.volume)
        elif isinstance(command, SetCameraControlCommand):
            await self._set_camera_control(command.control, command.value)
        elif isinstance(command, StartAudioMixCommand):
            await self._start_audio_mix(command)
        elif isinstance(command, SetAudioMixCommand):
            self.audio_mixer.set(command)
        elif isinstance(command, StopAudioMixCommand):
            await self.audio_mixer.stop()
        elif isinstance(command, SetProcessorsCommand):
            self._set_processors(command.chain, command.processors)
        elif isinstance(command, StartScreenShareCommand):
            await self._start_screen_share()
        elif isinstance(command, StopScreenShareCommand):
            await self._stop_screen_share()
        elif isinstance(command, StartRecordingCommand | StopRecordingCommand):
            await self._record(isinstance(command, StartRecordingCommand))

    async def _record(self, on: bool) -> None:
        if self.recorder is None:
            raise NoRecorderError("recording is not allowed here ([recorder] enabled = false)")
        if on:
            self.recorder.start()
        else:
            await self.recorder.stop()
        self.state.update(recording=self.recorder.recording)

    async def _set_video(self, on: bool) -> None:
        if on and self.outgoing.video_source is None:
            raise NoVideoError("no video to send ([video] enabled = false)")
        await self._changing_what_is_sent(lambda: self.outgoing.set_video(on))
        self.state.update(video_enabled=on)

    async def _changing_what_is_sent(self, change: Callable[[], None]) -> None:
        """Renegotiates the call if `change` turned a video track going out on or off."""
        before = self.outgoing.sending
        change()
        if self.outgoing.sending != before:
            await self._backend.renegotiate()

    async def _start_screen_share(self) -> None:
        """The screen instead of the camera; in a voice-only call, the screen alone."""
        if self.outgoing.video_source is None:
            raise NoVideoError("no video to share the screen in ([video] enabled = false)")
        if self._tasks is None:
            raise ShuttingDownError("the daemon is not running")
        if self._screen_share is not None:
            return
        source = ScreenSource(self.config.screen_share)
        runner = source.run(self.outgoing.publish_screen, self._screen_problem)
        self._screen_share = self._tasks.create_task(runner, name="screen-share")
        await self._changing_what_is_sent(lambda: self.outgoing.share_screen(True))
        self.state.update(video_source="screen")

    async def _stop_screen_share(self) -> None:
        """Back to the camera, whose frames were taken all along (it needs no reopening), or
        to no video in a voice-only call."""
        share, self._screen_share = self._screen_share, None
        if share is None:
            return
        await self._changing_what_is_sent(lambda: self.outgoing.share_screen(False))
        share.cancel()
        with suppress(asyncio.CancelledError):
            await share
        self.state.update(video_source=self.config.video.source, video_source_problem=None)

    def _screen_problem(self, problem: str | None) -> None:
        if self._screen_share is not None:
            self._source_problem("video", problem)

    def _chains(self) -> dict[str, ChainSpec]:
        outgoing, incoming = self.outgoing.chains, self._incoming_chains
        return {
            **{f"outgoing_{kind}": spec for kind, spec in outgoing.items()},
            **{f"incoming_{kind}": spec for kind, spec in incoming.items()},
        }

    def _set_processors(self, chain: str, entries: list[ProcessorEntry]) -> None:
        """The chain's processors from its next frame on; those it had that were disabled
        are forgotten with them."""
        chains = self._chains()
        chains[chain].replace(entries)
        kept = [d for d in self.state.current.disabled_processors if d.chain != chain]
        self.state.update(processors=_chain_names(chains), disabled_processors=kept)

    async def _start_audio_mix(self, command: StartAudioMixCommand) -> None:
        if self.outgoing.audio_source is None:
            raise NoOutgoingAudioError(
                "no outgoing audio to mix into, and none to pace the mix ([audio] enabled = false)"
            )
        if self._tasks is None:
            raise ShuttingDownError("the daemon is not running")
        await self.audio_mixer.start(command, self._tasks)

    async def _set_camera_control(self, name: str, value: ControlValue) -> None:
        camera = self.outgoing.video_source
        if not isinstance(camera, AdjustableCamera):
            raise NoCameraError(f"the video source is {self.state.current.video_source}, no camera")
        try:
            await camera.set_control(name, value)
        except ControlError as error:
            raise InvalidControlError(f"{error.field}: {error}") from None
        except CameraUnavailableError as error:
            raise CameraUnavailableCommandError(str(error)) from None

    def _set_volume(self, participant_id: str | None, volume: float) -> None:
        if self.speaker is None:
            raise NoSpeakerError("no speaker to set the volume of ([speaker] enabled = false)")
        present = {participant.id for participant in self.state.current.participants}
        if participant_id is not None and participant_id not in present:
            raise UnknownParticipantError(f"participant: {participant_id!r} is not in the call")
        self.speaker.set_volume(participant_id, volume)

    async def _join(self, room: str) -> None:
        if self._call is not None and not self._call.done() and self._call_room == room:
            return
        await self._end_call()
        if self._tasks is None:
            raise ShuttingDownError("the daemon is not running")
        self._call_room = room
        # The reply to `join` already says where the device is going.
        self.state.update(call=CallState.CONNECTING, room=room, last_error=None)
        self._call = self._tasks.create_task(self._run_call(room), name=f"call-{room}")

    async def _run_call(self, room: str) -> None:
        try:
            await self._backend.run(room)
        except Exception as error:
            log.exception("call in room %s failed", room)
            self.state.update(call=CallState.FAILED, participants=[], last_error=str(error))

    async def _end_call(self) -> None:
        call, self._call, self._call_room = self._call, None, None
        if call is not None:
            call.cancel()
            with suppress(asyncio.CancelledError):
                await call
        if self.state.current.call is not CallState.FAILED:
            self.state.update(call=CallState.IDLE, room=None, participants=[])

    # CallObserver: how the backend reports to us.

    def call_state_changed(
        self, state: CallState, room: str | None, error: str | None = None
    ) -> None:
        changes: dict[str, object] = {"call": state, "room": room}
        if state is CallState.IN_CALL:
            changes["last_error"] = None
        elif error is not None:
            changes["last_error"] = error
        self.state.update(**changes)

    def _name_of(self, key: str) -> str:
        """A participant's name, or "<name>'s screen" for the screen they share."""
        names = {p.id: p.name for p in self.state.current.participants}
        sharer = sharer_of(key)
        if sharer is not None:
            return f"{names.get(sharer, sharer)}'s screen"
        return names.get(key, key)

    def participant_changed(self, participant: Participant) -> None:
        self.state.set_participant(participant)

    def participant_left(self, participant_id: str) -> None:
        self.state.remove_participant(participant_id)
        self.renderer.forget(participant_id)
        self.renderer.forget(screen_of(participant_id))
        if self.speaker is not None:
            self.speaker.forget(participant_id)

    async def remote_track(self, participant_id: str, track: MediaStreamTrack) -> None:
        chain = ProcessorChain(self._incoming_chains[track.kind])
        report = functools.partial(
            self._processor_disabled, f"incoming_{track.kind}", participant=participant_id
        )
        track = ProcessedTrack(track, chain, report)  # an empty chain is passed through
        consumers = [functools.partial(self.renderer.render, participant_id)]
        if track.kind == "audio" and self.speaker is not None:
            consumers.append(functools.partial(self.speaker.play, participant_id))
        if self.recorder is not None:
            consumers.append(functools.partial(self.recorder.render, participant_id))
        if len(consumers) == 1:
            await consumers[0](track)
        else:
            await split(track, *consumers)

    def _processor_disabled(
        self, chain: str, record: Disabled, participant: str | None = None
    ) -> None:
        disabled = DisabledProcessor(
            chain=chain, name=record.name, participant=participant, error=record.error
        )
        log.warning("processor %s in %s disabled: %s", record.name, chain, record.error)
        self.state.update(disabled_processors=[*self.state.current.disabled_processors, disabled])

    def _source_problem(self, kind: str, problem: str | None) -> None:
        self._problem_changed(f"{kind}_source_problem", problem)

    def _problem_changed(self, field: str, problem: str | None) -> None:
        """A device went missing or came back: logged, and published with the state."""
        if problem == getattr(self.state.current, field):
            return
        if problem is None:
            log.info("%s: resolved", field.replace("_", " "))
        else:
            log.warning("%s", problem)
        self.state.update(**{field: problem})


def _chain_names(chains: dict[str, ChainSpec]) -> dict[str, list[str]]:
    return {name: [entry.name for entry in spec.entries] for name, spec in chains.items()}


def _upload_summary(rates: dict[str, Any] | None) -> dict[str, Any] | None:
    if rates is None:
        return None
    keys = ("send_kbps", "rtt_ms")
    return {key: rates.get(key) for key in keys}
