"""Which files and URLs a remote command may play: configured directories and URL prefixes
only, so MQTT can never read an arbitrary file or reach an arbitrary host."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from vcalld.config.models import AudioMixConfig
from vcalld.errors import InvalidCommandError

URL_SCHEMES = ("http", "https")
# FFmpeg's protocols a mix may use: a playlist or redirect cannot reach another protocol.
FILE_PROTOCOLS = "file"
URL_PROTOCOLS = "http,https,tcp,tls"


@dataclass(frozen=True)
class MixSource:
    target: str  # what FFmpeg opens: an absolute path or a URL
    protocols: str
    shown: str  # for the state and logs: a URL without credentials or query


def resolve_source(spec: str, config: AudioMixConfig) -> MixSource:
    """The source `spec` names, or `InvalidCommandError` naming the `source` field."""
    if "://" in spec:
        return _url(spec, config.url_prefixes)
    return _file(spec, config.directories)


def _url(spec: str, prefixes: list[str]) -> MixSource:
    parsed = urllib.parse.urlsplit(spec)
    if parsed.scheme not in URL_SCHEMES or not parsed.hostname:
        raise InvalidCommandError(f"source: a URL must be http(s)://host/..., not {spec!r}")
    if any(char.isspace() or ord(char) < 32 for char in spec) or "\\" in spec:
        raise InvalidCommandError("source: the URL holds whitespace, control characters or \\")
    if {".", ".."} & set(urllib.parse.unquote(parsed.path).split("/")):
        raise InvalidCommandError("source: a URL's path may not hold . or .. segments")
    if not any(spec.startswith(prefix) for prefix in prefixes):
        allowed = ", ".join(prefixes) if prefixes else "none are configured"
        raise InvalidCommandError(
            f"source: {show_url(spec)} is not under an allowed URL prefix "
            f"(audio_mix.url_prefixes: {allowed})"
        )
    return MixSource(spec, URL_PROTOCOLS, show_url(spec))


def show_url(url: str) -> str:
    """`url` without user, password or query: they may hold a credential."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))


def _file(spec: str, directories: list[Path]) -> MixSource:
    """An absolute path inside a directory, or a name relative to the first that holds it;
    symbolic links are followed before the check, so none leads out."""
    allowed = [directory.resolve() for directory in directories]
    candidates = [Path(spec)] if Path(spec).is_absolute() else [d / spec for d in allowed]
    inside = [
        resolved
        for resolved in (candidate.resolve() for candidate in candidates)
        if any(resolved.is_relative_to(directory) for directory in allowed)
    ]
    for resolved in inside:
        if resolved.is_file():
            return MixSource(str(resolved), FILE_PROTOCOLS, str(resolved))
    listed = ", ".join(str(directory) for directory in directories) or "none are configured"
    where = "no such file" if inside else "not a file"
    raise InvalidCommandError(
        f"source: {spec!r}: {where} in the audio mix directories (audio_mix.directories: {listed})"
    )
