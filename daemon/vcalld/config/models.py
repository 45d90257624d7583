"""The typed configuration tree: one model per section, unknown keys are errors at every depth."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vcalld.config.sources import TomlDocumentSource
from vcalld.media.processors.base import options_model
from vcalld.plugins import (
    PROCESSOR_GROUP,
    RENDERER_GROUP,
    SOURCE_GROUP,
    UnknownPluginError,
    load_plugin,
    plugin_validator,
)
from vcalld.room import tokens

CONTROL_NAME = re.compile(r"[a-z0-9_]{1,64}")
X_DISPLAY = r"^[A-Za-z0-9._-]*:[0-9]+(\.[0-9]+)?(\+[0-9]+,[0-9]+)?$"  # host:display.screen+x,y


def _control_name(name: str) -> str:
    if not CONTROL_NAME.fullmatch(name):
        raise ValueError("a control's name is lower case, as `vcalld devices` lists it")
    return name


def _control_value(value: object) -> int | bool | str:
    if isinstance(value, int | str):  # bool is an int
        return value
    raise ValueError("a control takes an integer, true or false, or a menu entry's label")


ControlName = Annotated[str, AfterValidator(_control_name)]
ControlSetting = Annotated[
    int | bool | str, PlainValidator(_control_value, json_schema_input_type=int | bool | str)
]
Port = Annotated[int, Field(ge=1, le=65535)]


def _readable(path: Path) -> Path:
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {str(path)!r}")
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable)]


def _token_secret(path: Path) -> Path:
    tokens.read_secret(_readable(path))
    return path


TokenSecretFile = Annotated[Path, AfterValidator(_token_secret)]


class Section(BaseModel):
    """Base of every config model: a typo is an error, never a silently ignored key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceConfig(Section):
    id: str = Field(
        default_factory=lambda: socket.gethostname() or "vcalld",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Stable device id: MQTT topics and the participant id use it.",
    )
    name: str = Field(
        default="",
        max_length=64,
        description="Name shown to the other participants; the device id when empty.",
    )

    @property
    def display_name(self) -> str:
        return self.name or self.id


class IceServer(Section):
    urls: list[str] = Field(min_length=1, description="stun:, turn: or turns: URLs.")
    username: str | None = None
    credential: str | None = None


class CallAudioConfig(Section):
    """The audio on the wire: Opus, with FEC and RED copies sized to the measured loss."""

    bitrate_kbps: int = Field(
        default=32, ge=6, le=510, description="Opus bitrate (24-32 for voice, 64+ for music)."
    )
    stereo: bool = Field(default=False, description="Send and ask for stereo (music).")
    fec: bool = Field(
        default=True, description="Opus in-band FEC, sized by the loss the far end reports."
    )
    dtx: bool = Field(default=False, description="Send almost nothing during silence.")
    red_max_copies: int = Field(
        default=6,
        ge=0,
        le=8,
        description=(
            "RED (RFC 2198): at most this many copies of earlier frames per packet, used as "
            "loss requires (none on a clean network); 0 does not offer RED."
        ),
    )


class JanusConfig(Section):
    """A Janus VideoRoom deployment (`call.backend = "janus"`)."""

    urls: list[Annotated[str, Field(pattern=r"^(wss?|https?)://")]] = Field(
        default_factory=lambda: ["ws://127.0.0.1:8188/"],
        min_length=1,
        description=(
            "Janus API endpoints, tried in order: a WebSocket (ws://, wss://) and, as a "
            "fallback where proxies block WebSockets, HTTP long polling (http://…/janus)."
        ),
    )
    token: SecretStr | None = Field(
        default=None, description="Janus API token (token_auth, plain or HMAC-signed)."
    )
    api_secret: SecretStr | None = Field(default=None, description="Janus's `apisecret`.")
    room_pin: SecretStr | None = Field(default=None, description="PIN the room requires.")
    create_room: bool = Field(
        default=True, description="Create the room when Janus does not have it."
    )
    room_secret: SecretStr | None = Field(
        default=None, description="Secret a room made by us gets (to edit or destroy it)."
    )
    admin_key: SecretStr | None = Field(
        default=None, description="The VideoRoom plugin's admin_key, if rooms need it."
    )
    keepalive_seconds: float = Field(
        default=25.0,
        ge=1,
        le=300,
        description="Keepalive interval: below Janus's session_timeout (60 s by default).",
    )
    publishers: int = Field(
        default=16, ge=1, le=100, description="Publishers a room made by us admits."
    )
    bitrate_kbps: int = Field(
        default=1024,
        ge=64,
        le=20000,
        description="Video bitrate cap of each publisher in a room made by us (REMB).",
    )


class CallConfig(Section):
    backend: Literal["mesh", "janus"] = Field(
        default="mesh",
        description=(
            "mesh: the built-in room server, one connection per participant (up to about "
            "7 with video); janus: a Janus VideoRoom, one upload for any number."
        ),
    )
    server_url: str = Field(
        default="ws://127.0.0.1:8080/ws",
        pattern=r"^wss?://",
        description="WebSocket URL of the room server's signalling endpoint (mesh).",
    )
    room: str = Field(
        default="lobby",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description=(
            "Room joined at start when auto_join is set. Janus rooms are numbers unless "
            "Janus has string_ids set."
        ),
    )
    janus: JanusConfig = Field(default_factory=JanusConfig)
    auto_join: bool = Field(default=True, description="Join `room` as soon as the daemon starts.")
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="STUN/TURN servers. Empty means none: no public STUN server is ever added.",
    )
    ice_host_addresses: list[str] = Field(
        default_factory=list,
        description=(
            "Gather host ICE candidates only on these local IP addresses (loopback allowed). "
            "Empty means every non-loopback address."
        ),
    )
    room_secret_file: TokenSecretFile | None = Field(
        default=None,
        description=(
            "The room server's token secret (mesh): the daemon signs itself a short-lived "
            "token for each room it joins."
        ),
    )
    server_ca_file: ReadableFile | None = Field(
        default=None,
        description="CA bundle that verifies a wss:// room server; the system's when unset.",
    )
    reconnect_min_seconds: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(default=5.0, gt=0, le=600)
    audio: CallAudioConfig = Field(default_factory=CallAudioConfig)

    @field_validator("ice_host_addresses")
    @classmethod
    def _addresses_are_ips(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            ipaddress.ip_address(address)
        return addresses

    @model_validator(mode="after")
    def _backoff_bounds_ordered(self) -> CallConfig:
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds must not be below reconnect_min_seconds")
        return self


VideoSourceName = Annotated[str, AfterValidator(plugin_validator(SOURCE_GROUP, "video"))]
AudioSourceName = Annotated[str, AfterValidator(plugin_validator(SOURCE_GROUP, "audio"))]
RendererName = Annotated[str, AfterValidator(plugin_validator(RENDERER_GROUP))]


class BitrateSection(Section):
    """What one outgoing video track may send; unset, by its size and rate as browsers
    choose (see `vcalld.media.video_codecs.bitrates_for`)."""

    min_bitrate_kbps: int = Field(default=100, ge=30, le=100_000)
    start_bitrate_kbps: int | None = Field(
        default=None,
        ge=30,
        le=100_000,
        description=(
            "Where the bitrate starts before the far end's estimate arrives, and what "
            "browsers are asked to start sending at (unset: half the maximum)."
        ),
    )
    max_bitrate_kbps: int | None = Field(
        default=None,
        ge=30,
        le=100_000,
        description=(
            "The most it sends, and asks browsers to send (unset: 1700 at 640x480 and 30 fps, "
            "2500 at 1280x720, 4000 at 1920x1080, 40% more at 60 fps)."
        ),
    )

    @model_validator(mode="after")
    def _bitrates_in_order(self) -> BitrateSection:
        start, maximum = self.start_bitrate_kbps, self.max_bitrate_kbps
        for name, value in (("start_bitrate_kbps", start), ("max_bitrate_kbps", maximum)):
            if value is not None and value < self.min_bitrate_kbps:
                raise ValueError(f"{name} is below min_bitrate_kbps")
        if start is not None and maximum is not None and start > maximum:
            raise ValueError("start_bitrate_kbps is above max_bitrate_kbps")
        return self


class VideoConfig(BitrateSection):
    enabled: bool = Field(
        default=True, description="The device has video to send (false: voice only, always)."
    )
    send_at_start: bool = Field(
        default=True,
        description="Calls start with video (false: voice-only until `set-video` turns it on).",
    )
    encode_once: bool = Field(
        default=False,
        description=(
            "One VP8 encoder for every peer connection, instead of one each (a mesh of seven "
            "encodes every frame once, not six times); VP8 is then the only codec offered."
        ),
    )
    source: VideoSourceName = Field(
        default="test-pattern", description="Entry point in `vcalld.sources`."
    )
    width: int = Field(default=640, ge=16, le=7680, multiple_of=2)
    height: int = Field(default=480, ge=16, le=4320, multiple_of=2)
    fps: int = Field(default=30, ge=1, le=120)
    device: str = Field(
        default="",
        description=(
            "Camera of the `camera` source: a device path (`/dev/video0`), a name under "
            "`/dev/v4l/by-id`, or a card name as `vcalld devices` lists it; the first camera "
            "when empty."
        ),
    )
    uri: str = Field(
        default="",
        max_length=4096,
        description=(
            "What the `file` source plays, looped: a video file's path, or an rtsp://, "
            "http:// or https:// stream; for the `screen` source, the X display (:0)."
        ),
    )
    camera_format: Literal["auto", "mjpeg", "yuyv", "nv12", "h264", "h264-passthrough"] = Field(
        default="auto",
        description=(
            "Camera format; auto picks the one that reaches the size and rate best. "
            "h264-passthrough sends the camera's own H.264 as it is, at the camera's size "
            "(no decoding, scaling, processors or encoder of ours; H.264 only)."
        ),
    )
    controls: dict[ControlName, ControlSetting] = Field(
        default_factory=dict,
        description=(
            "Camera controls set whenever the camera opens, by the names `vcalld devices` "
            "lists: brightness, exposure_time_absolute, focus_absolute, zoom_absolute, "
            'power_line_frequency ("50 Hz"), ...'
        ),
    )

    @property
    def camera_passthrough(self) -> bool:
        """The camera's own H.264 is sent as it is, not decoded."""
        return self.camera_format == "h264-passthrough"

    @model_validator(mode="after")
    def _uri_fits_the_source(self) -> VideoConfig:
        if self.source == "file" and not self.uri:
            raise ValueError("the file source needs `uri`: a video file's path or a stream URL")
        if self.source == "screen" and self.uri and not re.fullmatch(X_DISPLAY, self.uri):
            raise ValueError(f"the screen source's `uri` is an X display (:0), not {self.uri!r}")
        return self


class AudioConfig(Section):
    enabled: bool = Field(default=True, description="Send audio.")
    source: AudioSourceName = Field(default="tone", description="Entry point in `vcalld.sources`.")
    sample_rate: Literal[16000, 24000, 32000, 44100, 48000] = 48000
    channels: Literal[1, 2] = 1
    tone_frequency_hz: float = Field(
        default=440.0, ge=20, le=8000, description="Frequency of the `tone` source."
    )
    device: str = Field(
        default="default",
        min_length=1,
        description=(
            "Capture device of the `alsa` source: an ALSA PCM name (`default`, "
            "`plughw:CARD=Device,DEV=0`) or a card id as `vcalld devices` lists it."
        ),
    )
    period_frames: int | None = Field(
        default=None, ge=32, le=16384, description="ALSA period; 20 ms when unset."
    )


class SpeakerConfig(Section):
    enabled: bool = Field(
        default=False, description="Play the remote participants on an ALSA device."
    )
    device: str = Field(
        default="default",
        min_length=1,
        description="ALSA PCM name or card id, as for `audio.device`.",
    )
    sample_rate: Literal[16000, 32000, 44100, 48000] = 48000
    channels: Literal[1, 2] = 2
    period_frames: int | None = Field(
        default=None, ge=32, le=16384, description="ALSA period; 20 ms when unset."
    )
    volume: float = Field(
        default=1.0, ge=0, le=4, description="Master volume (1 = as received; a limiter follows)."
    )


class VoiceConfig(Section):
    """Processing of a microphone source (`alsa`); other audio sources are sent as they are."""

    echo_cancellation: bool = Field(
        default=True,
        description="Remove what the speaker plays from the microphone (needs `[speaker]`).",
    )
    noise_suppression: bool = Field(default=True, description="Suppress steady background noise.")
    gain_control: bool = Field(
        default=True, description="Adaptive digital gain towards a steady speech level."
    )
    high_pass_filter: bool = Field(default=True, description="Remove rumble and DC below 80 Hz.")


def _url_prefix(prefix: str) -> str:
    parsed = urllib.parse.urlsplit(prefix)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.path:
        raise ValueError(
            "a URL prefix is http(s)://host/ and a path (at least /), so no other host "
            "can start with it"
        )
    return prefix


class AudioMixConfig(Section):
    """Where `start-audio-mix` may play from: nothing else is read or fetched."""

    directories: list[Path] = Field(
        default_factory=lambda: [Path("/var/lib/vcalld/media")],
        description="Files in these directories (and below; links are followed first).",
    )
    url_prefixes: list[Annotated[str, AfterValidator(_url_prefix)]] = Field(
        default_factory=list,
        description=(
            "http(s) URLs that start with one of these, e.g. `https://media.example.com/kiosk/`; "
            "none by default. The server is trusted with its redirects."
        ),
    )


class ProcessorEntry(Section):
    name: str = Field(description="Entry point in `vcalld.processors`.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The processor's own options (README, Processors)."
    )

    @model_validator(mode="after")
    def _checked_by_the_processor(self) -> ProcessorEntry:
        try:
            model = options_model(load_plugin(PROCESSOR_GROUP, self.name))
        except UnknownPluginError as error:
            raise ValueError(str(error)) from None
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in detail['loc']) or '(options)'}: {detail['msg']}"
                    for detail in error.errors(include_url=False)
                )
                raise ValueError(f"options of {self.name!r}: {problems}") from None
        return self


class VideoProcessorEntry(ProcessorEntry):
    name: Annotated[str, AfterValidator(plugin_validator(PROCESSOR_GROUP, "video"))] = Field(
        description="Entry point in `vcalld.processors`, a video processor."
    )


class AudioProcessorEntry(ProcessorEntry):
    name: Annotated[str, AfterValidator(plugin_validator(PROCESSOR_GROUP, "audio"))] = Field(
        description="Entry point in `vcalld.processors`, an audio processor."
    )


class ProcessorsConfig(Section):
    """Ordered chains of frame processors, each applied in turn (README, Processors)."""

    outgoing_video: list[VideoProcessorEntry] = Field(default_factory=list)
    outgoing_audio: list[AudioProcessorEntry] = Field(default_factory=list)
    incoming_video: list[VideoProcessorEntry] = Field(
        default_factory=list, description="Per remote participant, before the display."
    )
    incoming_audio: list[AudioProcessorEntry] = Field(
        default_factory=list, description="Per remote participant, before the speaker."
    )


class ScreenShareConfig(BitrateSection):
    """What `start-screen-share` sends, instead of the camera or next to it."""

    display: str = Field(
        default=":0",
        pattern=X_DISPLAY,
        description="The X11 display (`:0`; `:0.0+100,200` starts the grab at that point).",
    )
    width: int = Field(default=0, ge=0, le=7680, multiple_of=2, description="0: the screen's.")
    height: int = Field(default=0, ge=0, le=4320, multiple_of=2, description="0: the screen's.")
    fps: int = Field(default=10, ge=1, le=60)
    mouse: bool = Field(default=True, description="Draw the mouse pointer.")
    second_track: bool = Field(
        default=False,
        description=(
            "Send the screen next to the camera, as a second video track that the far ends "
            "show in a tile of its own (false: in the camera's place)."
        ),
    )


class RecorderConfig(Section):
    """Record the call: each remote participant to a file of their own, or the composite
    (H.264 and Opus in Matroska)."""

    enabled: bool = Field(
        default=False, description="Allow recording (and the start/stop-recording commands)."
    )
    record_at_start: bool = Field(default=True, description="Record as soon as the daemon runs.")
    directory: Path = Field(
        default=Path("/var/lib/vcalld/recordings"),
        description=(
            "Files are named <date>-<time>-<participant's name>-<id>.mkv, or "
            "<date>-<time>-composite.mkv."
        ),
    )
    mode: Literal["participants", "composite"] = Field(
        default="participants",
        description=(
            "participants: a file for each remote participant; composite: the call as the "
            "screen lays it out, everyone's sound mixed, in one file."
        ),
    )
    composite_width: int = Field(default=1280, ge=64, le=3840, multiple_of=2)
    composite_height: int = Field(default=720, ge=64, le=2160, multiple_of=2)
    composite_fps: int = Field(default=15, ge=1, le=60)


class DisplayConfig(Section):
    renderer: RendererName = Field(
        default="stats",
        description="Entry point in `vcalld.renderers`: `display` (the screen) or `stats`.",
    )
    driver: Literal["auto", "kmsdrm", "x11", "wayland", "offscreen"] = Field(
        default="auto",
        description=(
            "How the `display` renderer reaches the screen: auto takes Wayland or X11 when a "
            "session is there, else KMS/DRM (no desktop at all)."
        ),
    )
    width: int = Field(
        default=0, ge=0, le=7680, description="0: the display's own mode, full screen."
    )
    height: int = Field(default=0, ge=0, le=4320)
    rotation: Literal[0, 90, 180, 270] = Field(
        default=0, description="Degrees clockwise the picture is turned, for portrait kiosks."
    )
    self_view: bool = Field(default=False, description="Show the device's own picture too.")

    @model_validator(mode="after")
    def _size_together(self) -> DisplayConfig:
        if (self.width == 0) != (self.height == 0):
            raise ValueError("give width and height together, or neither")
        return self


class MqttTlsConfig(Section):
    enabled: bool = Field(default=False, description="Connect with TLS (usually port 8883).")
    ca_file: ReadableFile | None = Field(
        default=None, description="CA bundle; the system's when unset."
    )
    cert_file: ReadableFile | None = Field(default=None, description="Client certificate (PEM).")
    key_file: ReadableFile | None = Field(
        default=None, description="Client certificate's key (PEM)."
    )

    @model_validator(mode="after")
    def _certificate_with_key(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class HomeAssistantConfig(Section):
    enabled: bool = Field(default=False, description="Publish Home Assistant MQTT discovery.")
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+]+$")
    rooms: list[str] = Field(
        default_factory=list, description="Rooms offered in Home Assistant's room selector."
    )


class MqttConfig(Section):
    enabled: bool = Field(default=False, description="Connect to an MQTT broker.")
    host: str = "127.0.0.1"
    port: Port = 1883
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto", description="auto: MQTT 5, falling back to 3.1.1 if the broker refuses."
    )
    client_id: str = Field(
        default="", max_length=128, description="Stable client id; vcalld-<device id> when empty."
    )
    username: str | None = None
    password_file: ReadableFile | None = Field(
        default=None, description="File holding the password."
    )
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig)
    base_topic: str = Field(default="vcalld", pattern=r"^[^#+$][^#+]*$")
    group: str = Field(
        default="all",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Commands to <base_topic>/<group>/command/<name> reach every device.",
    )
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    session_expiry_seconds: int = Field(
        default=3600,
        ge=0,
        description="How long the broker keeps commands for this device while it is offline.",
    )
    reconnect_min_seconds: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=600)
    stats_interval_seconds: float = Field(
        default=10.0, ge=0, description="Period of call statistics on `stats`; 0 turns them off."
    )
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds must not be below reconnect_min_seconds")
        return self

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text().strip()


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = Field(
        default="text", description="`json` writes one JSON object per line (for machines)."
    )


class RoomServerConfig(Section):
    host: str = Field(default="127.0.0.1", description="Address `vcalld room-server` binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    token_secret_file: TokenSecretFile | None = Field(
        default=None,
        description=(
            "File holding the secret (32 bytes or more) that signs room tokens; joining a "
            "room then takes a token for it (`vcalld room-token`)."
        ),
    )
    anonymous: bool = Field(
        default=False,
        description=(
            "Let anyone who reaches the server into any room, without a token. The server "
            "will not start with neither this nor token_secret_file."
        ),
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Web origins (https://host[:port]) whose pages may connect besides the server's "
            "own; a client that sends no Origin (a daemon) is not a page and is let through."
        ),
    )
    tls_cert_file: ReadableFile | None = Field(
        default=None, description="Serve HTTPS and WSS with this certificate chain (PEM)."
    )
    tls_key_file: ReadableFile | None = Field(
        default=None, description="The certificate's private key (PEM)."
    )
    max_participants: int = Field(default=8, ge=2, le=64)
    max_message_bytes: int = Field(default=65536, ge=1024, le=1 << 20)
    max_messages_per_second: float = Field(
        default=20.0, gt=0, description="Sustained message rate each connection may send."
    )
    message_burst: int = Field(
        default=200,
        ge=1,
        description="Messages a connection may send at once above that rate (joins trickle).",
    )
    ice_servers: list[IceServer] = Field(
        default_factory=list, description="ICE servers handed to browser clients."
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urllib.parse.urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://kiosk.example:8443")
        return [origin.lower() for origin in origins]

    @model_validator(mode="after")
    def _tls_pair(self) -> RoomServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class ControlConfig(Section):
    enabled: bool = Field(default=True, description="Accept `vcallctl` commands locally.")
    socket: Path = Field(
        default=Path("/run/vcalld/control.sock"),
        description="Unix socket `vcallctl` talks to (root or the vcalld group only).",
    )


class VcalldConfig(BaseSettings):
    """The whole configuration: TOML document, overridden by `VCALLD_<SECTION>__<KEY>`."""

    model_config = SettingsConfigDict(
        env_prefix="VCALLD_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    call: CallConfig = Field(default_factory=CallConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    speaker: SpeakerConfig = Field(default_factory=SpeakerConfig)
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    audio_mix: AudioMixConfig = Field(default_factory=AudioMixConfig)
    processors: ProcessorsConfig = Field(default_factory=ProcessorsConfig)
    screen_share: ScreenShareConfig = Field(default_factory=ScreenShareConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    room_server: RoomServerConfig = Field(default_factory=RoomServerConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlDocumentSource(settings_cls)
