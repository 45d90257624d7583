"""Entry-point discovery shared by every plugin kind: built-ins register like third parties."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

SOURCE_GROUP = "vcalld.sources"
RENDERER_GROUP = "vcalld.renderers"
PROCESSOR_GROUP = "vcalld.processors"
PLUGIN_PATH_VARIABLE = "VCALLD_PLUGIN_PATH"
DEFAULT_PLUGIN_DIRECTORY = "/usr/local/lib/vcalld/plugins"


def add_plugin_directories(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Where third-party plugins live outside vcalld's own environment (the package's has
    no pip): directories made by `pip install --no-deps --target DIR`, those of
    $VCALLD_PLUGIN_PATH or else /usr/local/lib/vcalld/plugins. Each goes at the end of
    sys.path, so vcalld's own libraries are never shadowed, and the plugins' entry points
    are found like the built-ins'. Returns the directories added."""
    added = []
    for directory in environ.get(PLUGIN_PATH_VARIABLE, DEFAULT_PLUGIN_DIRECTORY).split(os.pathsep):
        if directory and directory not in sys.path and Path(directory).is_dir():
            sys.path.append(directory)
            added.append(directory)
    return added


class UnknownPluginError(LookupError):
    """Config names a plugin that is not installed; the message lists the ones that are."""


def load_plugin(group: str, name: str) -> Any:
    """The object registered as `name` in entry-point `group` (a factory, by convention)."""
    found = entry_points(group=group, name=name)
    if not found:
        installed = ", ".join(sorted(point.name for point in entry_points(group=group)))
        kind = group.rsplit(".", 1)[-1].removesuffix("s")
        raise UnknownPluginError(f"no {kind} {name!r} is installed (installed: {installed})")
    return next(iter(found)).load()


def plugin_validator(group: str, media_kind: str | None = None) -> Callable[[str], str]:
    """A config validator: `name` must be installed in `group` and, for sources and
    processors, handle `media_kind` ("audio" or "video"), so a wrong name fails at
    check-config, not at start."""

    def validate(name: str) -> str:
        try:
            factory = load_plugin(group, name)
        except UnknownPluginError as error:
            raise ValueError(str(error)) from None
        produces = getattr(factory, "kind", None)
        if media_kind is not None and produces != media_kind:
            plugin = group.rsplit(".", 1)[-1].removesuffix("s")
            article = "an" if str(produces)[:1] in "aeiou" else "a"
            raise ValueError(f"{name!r} is {article} {produces} {plugin}, not {media_kind}")
        return name

    return validate
