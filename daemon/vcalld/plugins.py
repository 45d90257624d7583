"""Entry-point discovery shared by every plugin kind: built-ins register like third parties."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

SOURCE_GROUP = "vcalld.sources"
RENDERER_GROUP = "vcalld.renderers"
PROCESSOR_GROUP = "vcalld.processors"


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
