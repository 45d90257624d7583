"""Load the TOML file plus environment overrides, and report every problem with its origin."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from vcalld.config.locate import KeyPath, key_lines, line_of
from vcalld.config.models import VcalldConfig
from vcalld.config.sources import toml_document
from vcalld.plugins import PLUGIN_PATH_VARIABLE

DEFAULT_PATH = Path("/etc/vcalld/vcalld.toml")
ENV_PREFIX = "VCALLD_"
ENV_DELIMITER = "__"
EX_CONFIG = 78


@dataclass(frozen=True)
class ConfigProblem:
    """One problem, rendered compiler-style so editors and grep can jump to it."""

    source: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        origin = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{origin}: {self.key}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


def load_config(path: Path) -> VcalldConfig:
    """Build the configuration from `path` and `VCALLD_*` variables, or raise `ConfigError`."""
    environ = os.environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigError([ConfigProblem(str(path), "file", f"cannot read: {reason}")]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(path, error)]) from None
    problems = _unknown_environment_names(environ)
    try:
        with toml_document(document):
            config = VcalldConfig()
    except ValidationError as error:
        lines = key_lines(text)
        found = [_validation_problem(path, lines, detail, environ) for detail in error.errors()]
        problems += sorted(found, key=lambda problem: (problem.line is None, problem.line or 0))
    if problems:
        raise ConfigError(problems)
    return config


def summary(path: Path, config: VcalldConfig) -> str:
    video = config.video
    audio = config.audio
    parts = [
        f"device {config.device.id}",
        f"room {config.call.room} at {_call_server(config)}"
        + (" (auto-join)" if config.call.auto_join else ""),
        f"video {video.source} {video.width}x{video.height}@{video.fps}"
        if video.enabled
        else "video off",
        f"audio {audio.source} {audio.sample_rate} Hz "
        + ("mono" if audio.channels == 1 else "stereo")
        if audio.enabled
        else "audio off",
        f"mqtt {config.mqtt.host}:{config.mqtt.port}" if config.mqtt.enabled else "mqtt off",
    ]
    return f"{path}: ok: " + ", ".join(parts)


def _syntax_problem(path: Path, error: tomllib.TOMLDecodeError) -> ConfigProblem:
    match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
    if match is None:
        return ConfigProblem(str(path), "syntax", message)
    line, column = match.groups()
    return ConfigProblem(str(path), "syntax", f"{message} (column {column})", int(line))


def _env_name(path: KeyPath) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(part).upper() for part in path)


def _env_origin(path: KeyPath, environ: Mapping[str, str]) -> str | None:
    """The variable a value at `path` came from, if an environment variable set it."""
    upper = {name.upper() for name in environ}
    for end in range(len(path), 0, -1):
        if (name := _env_name(path[:end])) in upper:
            return name
    return None


def _unknown_environment_names(environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Top-level `VCALLD_*` names that match no section (but for VCALLD_PLUGIN_PATH, read
    before any config is); pydantic-settings would ignore them."""
    sections = set(VcalldConfig.model_fields)
    problems = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name == PLUGIN_PATH_VARIABLE:
            continue
        section = name[len(ENV_PREFIX) :].split(ENV_DELIMITER)[0].lower()
        if section not in sections:
            problems.append(
                ConfigProblem(
                    f"environment {name}",
                    section,
                    "unknown section" + _did_you_mean(section, sections),
                )
            )
    return problems


def _validation_problem(
    path: Path, lines: dict[KeyPath, int], detail: Any, environ: Mapping[str, str]
) -> ConfigProblem:
    loc: KeyPath = tuple(detail["loc"])
    key = _dotted(loc)
    env_name = _env_origin(loc, environ)
    message = _describe(detail, loc)
    if env_name:
        return ConfigProblem(f"environment {env_name}", key, message)
    return ConfigProblem(str(path), key, message, line_of(lines, loc))


def _dotted(loc: KeyPath) -> str:
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a problem with a table's key itself
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _describe(detail: Any, loc: KeyPath) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
    if kind == "missing":
        return "required key is missing"
    message = str(detail["msg"])
    message = message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    return f"{message}, got {_toml_repr(detail['input'])}"


def _fields_at(loc: KeyPath) -> set[str]:
    """Field names that are valid at `loc`, found by walking the model tree."""
    model: type[BaseModel] = VcalldConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return set()
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return set()
        model = nested[0]
    return set(model.model_fields)


def _did_you_mean(word: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _toml_repr(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _call_server(config: VcalldConfig) -> str:
    if config.call.backend == "janus":
        return "Janus " + " or ".join(config.call.janus.urls)
    return config.call.server_url
