"""Hostile signalling: the room server answers every bad message and a live call survives it.

The fuzzer is a real WebSocket client. Malformed messages must get an `error` reply with the
right code; garbage relayed to the daemons (nonsense SDP and candidates) must be dropped by them
without disturbing the call that is running between them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import MIN_FPS, eventually, received, running, video_ok
from vcalld.config import VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.room import tokens
from vcalld.room.server import TRANSPORT_LIMIT_FACTOR, RoomServer
from vcalld.state import CallState

MAX_BYTES = 4096
FUZZ_MESSAGES = 400
REPLY_SECONDS = 5.0
SEED = 20261124
ERROR_CODES = {"invalid-json", "invalid-message", "unknown-participant", "already-joined"}
# Messages in the long fuzz (8 s on the host for 100,000), any number with
# FUZZ_SIGNALLING_MESSAGES.
LONG_FUZZ_MESSAGES = int(os.environ.get("FUZZ_SIGNALLING_MESSAGES", "100000"))
BATCH = 500


@pytest.fixture
async def strict_server() -> AsyncIterator[RoomServer]:
    config = RoomServerConfig(
        port=0,
        max_participants=3,
        max_message_bytes=MAX_BYTES,
        anonymous=True,  # tokens are tested in test_room_security
        max_messages_per_second=10_000,  # the fuzzer sends as fast as it can
    )
    server = RoomServer(config)
    await server.start()
    yield server
    await server.stop()


@asynccontextmanager
async def client(server: RoomServer) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{server.port}/ws") as ws,
    ):
        yield ws


async def reply(
    ws: aiohttp.ClientWebSocketResponse, kind: str = "error", containing: str = ""
) -> dict[str, Any]:
    """The next message of type `kind` (mentioning `containing`), skipping everything else,
    such as signals the daemons relay back."""
    async with asyncio.timeout(REPLY_SECONDS):
        while True:
            message: dict[str, Any] = await ws.receive_json()
            if message["type"] == kind and containing in message.get("message", ""):
                return message


MALFORMED: list[tuple[str, str | bytes, str, str]] = [
    ("not json", "{nope", "invalid-json", "not valid JSON"),
    ("json array", "[1, 2]", "invalid-message", ""),
    ("type of wrong type", '{"type": 5}', "invalid-message", ""),
    ("unknown type", '{"type": "hello"}', "invalid-message", ""),
    ("join without fields", '{"type": "join"}', "invalid-message", "room: Field required"),
    (
        "room name with a path",
        '{"type":"join","room":"../etc","name":"x"}',
        "invalid-message",
        "room",
    ),
    ("empty name", '{"type":"join","room":"r","name":""}', "invalid-message", "name"),
    (
        "name too long",
        '{"type":"join","room":"r","name":"' + "n" * 65 + '"}',
        "invalid-message",
        "name",
    ),
    ("room of wrong type", '{"type":"join","room":[],"name":"x"}', "invalid-message", "room"),
    (
        "extra field",
        '{"type":"join","room":"r","name":"x","admin":true}',
        "invalid-message",
        "admin",
    ),
    ("lone surrogate", '{"type":"join","room":"\\ud800","name":"x"}', "invalid-json", ""),
    (
        "signal data not an object",
        '{"type":"signal","to":"x","data":"sdp"}',
        "invalid-message",
        "data",
    ),
    ("signal before join", '{"type":"signal","to":"x","data":{}}', "not-in-room", ""),
    ("deep nesting", "[" * (MAX_BYTES - 1), "invalid-json", ""),
    (
        "oversized",
        '{"type":"join","room":"r","name":"' + "x" * MAX_BYTES + '"}',
        "message-too-large",
        "",
    ),
    ("binary frame", b"\x00\xff\x10", "invalid-message", "binary"),
]


@pytest.mark.parametrize(
    ("payload", "code", "detail"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_malformed_message_gets_named_error_and_connection_lives(
    strict_server: RoomServer, payload: str | bytes, code: str, detail: str
) -> None:
    async with client(strict_server) as ws:
        if isinstance(payload, bytes):
            await ws.send_bytes(payload)
        else:
            await ws.send_str(payload)
        error = await reply(ws)
        assert error["code"] == code, error
        assert detail in error["message"], error
        await ws.send_json({"type": "join", "room": "after", "name": "still-here"})
        assert (await reply(ws, "joined"))["room"] == "after"


async def test_room_errors_name_the_problem(strict_server: RoomServer) -> None:
    async with client(strict_server) as ws, client(strict_server) as other:
        await ws.send_json({"type": "join", "room": "brand-new-room", "name": "a"})
        await reply(ws, "joined")
        await ws.send_json({"type": "join", "room": "brand-new-room", "name": "a"})
        assert (await reply(ws))["code"] == "already-joined"
        await ws.send_json({"type": "signal", "to": "nobody", "data": {}})
        assert (await reply(ws))["code"] == "unknown-participant"
        # A participant of another room is as unknown as one who never existed.
        await other.send_json({"type": "join", "room": "elsewhere", "name": "b"})
        other_id = (await reply(other, "joined"))["id"]
        await ws.send_json({"type": "signal", "to": other_id, "data": {}})
        assert (await reply(ws))["code"] == "unknown-participant"


async def test_full_room_is_refused(strict_server: RoomServer) -> None:
    async with client(strict_server) as a, client(strict_server) as b, client(strict_server) as c:
        for index, ws in enumerate((a, b, c)):
            await ws.send_json({"type": "join", "room": "small", "name": f"p{index}"})
            await reply(ws, "joined")
        async with client(strict_server) as late:
            await late.send_json({"type": "join", "room": "small", "name": "late"})
            assert (await reply(late))["code"] == "room-full"


async def test_message_beyond_transport_limit_closes_only_that_connection(
    strict_server: RoomServer,
) -> None:
    async with client(strict_server) as bystander:
        await bystander.send_json({"type": "join", "room": "r", "name": "bystander"})
        await reply(bystander, "joined")
        async with client(strict_server) as ws:
            await ws.send_str("x" * (MAX_BYTES * TRANSPORT_LIMIT_FACTOR + 1))
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        await bystander.send_str("{nope")
        assert (await reply(bystander))["code"] == "invalid-json"


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, biased towards the shapes signalling uses."""
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False, 0, -1, 2**63, 1e308, float("-0")])
    if choice == 2:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(40)))
    if choice == 3:
        return rng.choice(["offer", "answer", "join", "signal", "leave", "", "v=0\r\n"])
    if choice == 4:
        return "candidate:" + " ".join(
            str(rng.randrange(-5, 70000)) for _ in range(rng.randrange(9))
        )
    if choice == 5:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["type", "room", "name", "to", "data", "description", "candidate", "sdp", "sdpMid"]
    return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randrange(5))}


def fuzz_message(rng: random.Random, targets: list[str]) -> str:
    """A mutated signalling message: structural junk, junk SDP for a daemon, or broken bytes."""
    kind = rng.randrange(4)
    if kind == 0:
        message: Any = junk(rng)
    elif kind == 1:
        sdp = "v=0\r\n" + "".join(
            f"{rng.choice('omactsb')}={junk(rng, 3)}\r\n" for _ in range(rng.randrange(12))
        )
        data = rng.choice(
            [
                {"description": {"type": rng.choice(["offer", "answer"]), "sdp": sdp}},
                {"candidate": {"candidate": junk(rng, 3), "sdpMid": junk(rng, 3)}},
                {"candidate": junk(rng, 3)},
                {"description": junk(rng, 2)},
                {},
            ]
        )
        message = {"type": "signal", "to": rng.choice(targets), "data": data}
    elif kind == 2:
        message = {"type": "signal", "to": junk(rng, 3), "data": junk(rng, 2)}
    else:
        text = json.dumps({"type": "signal", "to": rng.choice(targets), "data": {}})
        cut = rng.randrange(len(text))
        return text[:cut] + "".join(chr(rng.randrange(32, 127)) for _ in range(3)) + text[cut:]
    return json.dumps(message)


def join_message(rng: random.Random, secret: bytes) -> str:
    """A join or leave whose room, name and token are right, wrong or junk."""
    if rng.randrange(4) == 0:
        return json.dumps({"type": "leave"})
    room = rng.choice(["hall", "lobby", junk(rng, 3)])
    valid = tokens.issue(secret, "hall", 60)
    token = rng.choice(
        [
            valid,
            tokens.issue(secret, "lobby", 60),
            tokens.issue(secret, "hall", -1),
            tokens.issue(b"o" * 32, "hall", 60),
            mutated(rng, valid),
            junk(rng, 3),
            None,
        ]
    )
    message = {"type": "join", "room": room, "name": rng.choice(["kiosk", junk(rng, 3)])}
    if token is not None:
        message["token"] = token
    return json.dumps(message)


def mutated(rng: random.Random, text: str) -> str:
    cut = rng.randrange(len(text))
    return text[:cut] + chr(rng.randrange(32, 127)) + text[cut + 1 :]


async def errors_until(ws: aiohttp.ClientWebSocketResponse, marker: str) -> list[dict[str, Any]]:
    """Every error reply up to and including the one that mentions `marker`."""
    errors = []
    async with asyncio.timeout(REPLY_SECONDS):
        while True:
            message = await ws.receive_json()
            if message["type"] == "error":
                errors.append(message)
                if marker in message["message"]:
                    return errors


def assert_in_call(daemon: Daemon) -> None:
    assert daemon.state.current.call is CallState.IN_CALL, daemon.state.current


@pytest.fixture
async def room_server(room_secret_file: Path) -> AsyncIterator[RoomServer]:
    """As the tests' usual one, but it lets the fuzzer send as fast as it can."""
    config = RoomServerConfig(
        port=0, token_secret_file=room_secret_file, max_messages_per_second=10_000
    )
    server = RoomServer(config)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.slow
async def test_fuzzing_while_two_daemons_are_in_a_call(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        running(daemon_config(room_server, "dev-a")) as alice,
        running(daemon_config(room_server, "dev-b")) as bob,
    ):
        await eventually(lambda: video_ok(received(bob, "dev-a")), 15)
        rng = random.Random(SEED)
        async with client(room_server) as fuzzer:
            token = tokens.issue(tokens.read_secret(room_secret_file), "test", 60)
            await fuzzer.send_json(
                {"type": "join", "room": "test", "name": "fuzzer", "token": token}
            )
            joined = await reply(fuzzer, "joined")
            targets = [p["id"] for p in joined["participants"]]
            assert len(targets) == 2
            frames_before = received(bob, "dev-a")["video"]["stamped_frames"]
            started = asyncio.get_running_loop().time()
            for _ in range(FUZZ_MESSAGES):
                await fuzzer.send_str(fuzz_message(rng, targets))
                await asyncio.sleep(0.005)
            elapsed = asyncio.get_running_loop().time() - started
            # Ordered after all the junk: the connection is alive and still being answered.
            await fuzzer.send_json({"type": "signal", "to": "sentinel", "data": {}})
            errors = await errors_until(fuzzer, "sentinel")
            gained = received(bob, "dev-a")["video"]["stamped_frames"] - frames_before
            assert gained >= MIN_FPS * elapsed * 0.8, (gained, elapsed)
        codes = Counter(error["code"] for error in errors)
        assert set(codes) <= ERROR_CODES, codes
        assert all(isinstance(error["message"], str) and error["message"] for error in errors)
        assert codes["invalid-json"] and codes["invalid-message"], codes
        rejected_by_daemons = [r for r in caplog.records if "signal from fuzzer" in r.message]
        assert len(rejected_by_daemons) >= FUZZ_MESSAGES // 10, len(rejected_by_daemons)
        for daemon in (alice, bob):
            assert_in_call(daemon)
        await asyncio.sleep(1.0)
        assert video_ok(received(alice, "dev-b")) and video_ok(received(bob, "dev-a"))
        health_url = f"http://127.0.0.1:{room_server.port}/healthz"
        async with aiohttp.ClientSession() as http, http.get(health_url) as response:
            assert (await response.json())["rooms"] == {"test": 2}


async def test_a_long_fuzz_of_a_guarded_server_is_answered_and_never_crashes_it(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Joins with every kind of token, junk and mutated signals, pipelined in batches, each
    batch closed by a sentinel whose error must come back: nothing is left unanswered, and
    nothing reaches the server's handler for unexpected failures."""
    secret = b"s" * tokens.MIN_SECRET_BYTES
    (tmp_path / "secret").write_bytes(secret)
    config = RoomServerConfig(
        port=0,
        max_message_bytes=MAX_BYTES,
        token_secret_file=tmp_path / "secret",
        max_messages_per_second=1_000_000,
        message_burst=BATCH + 1,
    )
    server = RoomServer(config)
    await server.start()
    rng = random.Random(SEED)
    codes: Counter[str] = Counter()
    joined = sent = 0
    try:
        async with client(server) as ws:
            while sent < LONG_FUZZ_MESSAGES:
                for _ in range(BATCH):
                    fuzzing = rng.randrange(2)
                    await ws.send_str(
                        fuzz_message(rng, ["x"]) if fuzzing else join_message(rng, secret)
                    )
                sent += BATCH
                sentinel = f"sentinel-{sent}"
                await ws.send_json({"type": sentinel})  # its error names it, joined or not
                async with asyncio.timeout(REPLY_SECONDS):
                    while True:
                        message = await ws.receive_json()
                        if message["type"] == "joined":
                            joined += 1
                        elif sentinel in message.get("message", ""):
                            break
                        else:
                            assert message["type"] == "error" and message["message"], message
                            codes[message["code"]] += 1
    finally:
        await server.stop()
    print(f"{sent} messages: {joined} joins admitted, errors {dict(codes)}")
    assert set(codes) <= ERROR_CODES | {"unauthorized", "not-in-room", "message-too-large"}
    assert codes["unauthorized"] and codes["invalid-json"] and joined, codes
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
