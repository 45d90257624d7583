"""Shared fixtures: a room server on a free loopback port and daemons wired to it."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import loopback_config
from tests.janus import Janus, janus_call
from tests.mqtt import Mosquitto
from tests.soundcard import PipeSoundCard
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.room.server import RoomServer

Device = Callable[..., VcalldConfig]


@pytest.fixture(scope="session")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipeSoundCard]:
    card = PipeSoundCard(tmp_path_factory.mktemp("soundcard"))
    os.environ["ALSA_CONFIG_PATH"] = card.config_path  # libasound reads it at every open
    yield card
    card.close()


@pytest.fixture(scope="session")
def room_secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token secret of every test's room server: the tests join as a kiosk would."""
    path = tmp_path_factory.mktemp("room") / "token-secret"
    path.write_text(secrets.token_urlsafe(48))
    return path


@pytest.fixture
async def room_server(room_secret_file: Path) -> AsyncIterator[RoomServer]:
    config = RoomServerConfig(port=0, max_participants=4, token_secret_file=room_secret_file)
    server = RoomServer(config)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def daemon_config(tmp_path: Path, room_secret_file: Path) -> Callable[..., VcalldConfig]:
    def make(server: RoomServer | None, device_id: str, **sections: dict[str, Any]) -> VcalldConfig:
        """A device config on loopback; with no room server it does not join at start."""
        port = server.port if server is not None else 9
        call = {"auto_join": server is not None, "room_secret_file": str(room_secret_file)}
        sections["call"] = call | sections.get("call", {})
        return loopback_config(device_id, tmp_path, port, "test", **sections)

    return make


@pytest.fixture(params=["mesh", "janus"])
def device(request: pytest.FixtureRequest, daemon_config: Device) -> Device:
    """A maker of device configs in one call: through the room server, or through Janus."""
    if request.param == "mesh":
        server = request.getfixturevalue("room_server")
        return functools.partial(daemon_config, server)

    request.getfixturevalue("janus")

    def through_janus(device_id: str, **sections: dict[str, Any]) -> VcalldConfig:
        call = janus_call("1234") | sections.pop("call", {})
        return daemon_config(None, device_id, call=call, **sections)

    return through_janus


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Mosquitto(folder)
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


@pytest.fixture
async def janus(tmp_path: Path) -> AsyncIterator[Janus]:
    server = Janus(tmp_path)
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)
