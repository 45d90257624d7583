"""Call backends: the built-in room server's mesh, or a Janus VideoRoom (an SFU). Both are
SessionBackends (base.py): same arguments, same methods, reporting through the same
CallObserver, so nothing above them changes when a kiosk moves from one to the other."""

from __future__ import annotations

from typing import Any

from vcalld.call.backends.base import SessionBackend
from vcalld.call.backends.janus import JanusBackend
from vcalld.call.backends.mesh import MeshBackend
from vcalld.call.events import CallObserver, LocalMedia
from vcalld.config.models import CallConfig


def make_backend(
    config: CallConfig, name: str, media: LocalMedia, observer: CallObserver
) -> SessionBackend[Any]:
    backend: type[SessionBackend[Any]] = JanusBackend if config.backend == "janus" else MeshBackend
    return backend(config, name, media, observer)
