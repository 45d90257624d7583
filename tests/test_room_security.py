"""Who the room server lets in: room tokens, page origins, message rates and TLS, through a real
server on loopback, real daemons and the real `vcalld` command."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.certificates import make_pki
from tests.helpers import BIN, eventually, running
from vcalld.config import EX_CONFIG, VcalldConfig
from vcalld.config.models import RoomServerConfig
from vcalld.daemon import Daemon
from vcalld.room import tokens
from vcalld.room.rate import RateLimit
from vcalld.room.server import RoomServer, UnguardedError
from vcalld.state import CallState

SECRET = b"k" * tokens.MIN_SECRET_BYTES
NOW = 1_800_000_000.0


def test_a_token_admits_to_its_room_until_it_expires() -> None:
    token = tokens.issue(SECRET, "hall", 60, now=NOW)
    tokens.check(SECRET, token, "hall", now=NOW + 59)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.check(SECRET, token, "hall", now=NOW + 60)
    with pytest.raises(tokens.TokenError, match="another room"):
        tokens.check(SECRET, token, "lobby", now=NOW)
    with pytest.raises(tokens.TokenError, match="not signed"):
        tokens.check(b"o" * 32, token, "hall", now=NOW)


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        (part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature))
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "é.é.é",
        "a.b.!!!",
        _forged({"alg": "none"}, {"room": "hall", "exp": NOW + 60}),
        # A real token's claims swapped for another room's, its signature kept.
        ".".join(
            (
                tokens.issue(SECRET, "hall", 60, now=NOW).split(".")[0],
                tokens.issue(SECRET, "lobby", 60, now=NOW).split(".")[1],
                tokens.issue(SECRET, "hall", 60, now=NOW).split(".")[2],
            )
        ),
    ],
    ids=["empty", "two-parts", "four-parts", "non-ascii", "bad-base64", "alg-none", "spliced"],
)
def test_anything_but_a_signed_token_is_refused(token: str) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.check(SECRET, token, "hall", now=NOW)


def test_a_token_from_a_standard_jwt_library_layout_is_accepted() -> None:
    """Any service holding the secret can issue tokens: the layout is RFC 7519's HS256."""
    header = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"HS256"}').rstrip(b"=")
    claims = base64.urlsafe_b64encode(b'{"exp":1800000060,"room":"hall","sub":"x"}').rstrip(b"=")
    signature = hmac.new(SECRET, header + b"." + claims, hashlib.sha256).digest()
    token = b".".join((header, claims, base64.urlsafe_b64encode(signature).rstrip(b"=")))
    tokens.check(SECRET, token.decode(), "hall", now=NOW)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    return path


@asynccontextmanager
async def room_server(**settings: Any) -> AsyncIterator[RoomServer]:
    server = RoomServer(RoomServerConfig(port=0, **settings))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def signalling(
    server: RoomServer, headers: dict[str, str] | None = None
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{server.port}/ws", headers=headers) as ws,
    ):
        yield ws


async def join(ws: aiohttp.ClientWebSocketResponse, room: str, token: str | None) -> dict[str, Any]:
    await ws.send_json({"type": "join", "room": room, "name": "probe", "token": token})
    reply: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 5)
    return reply


async def test_joining_takes_a_valid_token_for_the_room(secret_file: Path) -> None:
    async with room_server(token_secret_file=secret_file) as server:
        for token, reason in [
            (None, "takes a token"),
            (tokens.issue(SECRET, "hall", -1), "token expired"),
            (tokens.issue(SECRET, "lobby", 60), "another room"),
            (tokens.issue(b"o" * 32, "hall", 60), "not signed"),
        ]:
            async with signalling(server) as ws:
                reply = await join(ws, "hall", token)
                assert reply["type"] == "error" and reply["code"] == "unauthorized", reply
                assert reason in reply["message"], reply
        async with signalling(server) as ws:
            reply = await join(ws, "hall", tokens.issue(SECRET, "hall", 60))
            assert reply["type"] == "joined" and reply["room"] == "hall", reply


def test_a_server_with_neither_tokens_nor_anonymous_is_refused() -> None:
    with pytest.raises(UnguardedError, match="token_secret_file"):
        RoomServer(RoomServerConfig(port=0))


async def test_only_its_own_and_listed_pages_may_connect(secret_file: Path) -> None:
    listed = "https://kiosk.example:8443"
    async with room_server(anonymous=True, allowed_origins=[listed]) as server:
        own = f"http://127.0.0.1:{server.port}"
        for origin in (own, listed, None):
            headers = {"Origin": origin} if origin else None
            async with signalling(server, headers) as ws:
                assert (await join(ws, "hall", None))["type"] == "joined"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with signalling(server, {"Origin": "https://evil.example"}):
                pass
        assert refused.value.status == 403


async def test_a_connection_over_its_rate_is_answered_and_kept() -> None:
    async with (
        room_server(anonymous=True, max_messages_per_second=5, message_burst=10) as server,
        signalling(server) as ws,
    ):
        for _ in range(40):
            await ws.send_json({"type": "leave"})
        replies = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(30)]
        assert {reply["code"] for reply in replies} == {"rate-limited"}, replies
        await asyncio.sleep(1.0)  # five messages' worth again
        assert (await join(ws, "hall", None))["type"] == "joined"


def test_the_rate_limit_allows_its_burst_then_its_rate() -> None:
    now = [0.0]
    limit = RateLimit(per_second=5, burst=10, clock=lambda: now[0])
    assert [limit.allow() for _ in range(11)] == [True] * 10 + [False]
    now[0] += 0.5  # two and a half messages' worth
    assert [limit.allow() for _ in range(3)] == [True, True, False]
    now[0] += 60  # a long silence refills the burst, not more
    assert sum(limit.allow() for _ in range(20)) == 10


async def test_daemons_meet_over_wss_with_their_own_tokens(
    tmp_path: Path, room_secret_file: Path, daemon_config: Callable[..., VcalldConfig]
) -> None:
    """The daemons verify the server against the configured CA and sign their own tokens
    (`daemon_config` gives them the server's secret); one with another secret, and one that
    does not trust the server's CA, are told why they are not let in."""
    pki = make_pki(tmp_path)
    tls = {"tls_cert_file": pki.server_certificate, "tls_key_file": pki.server_key}
    other_secret = tmp_path / "other"
    other_secret.write_bytes(b"o" * 32)
    async with room_server(token_secret_file=room_secret_file, **tls) as server:
        url = f"wss://127.0.0.1:{server.port}/ws"
        wss = {"server_url": url, "server_ca_file": str(pki.ca)}

        def device(name: str, **call: str) -> VcalldConfig:
            return daemon_config(server, name, call=call)

        async with (
            running(device("a", **wss)) as a,
            running(device("b", **wss)) as b,
            running(device("c", **wss, room_secret_file=str(other_secret))) as c,
            running(device("d", server_url=url)) as d,
        ):
            await eventually(lambda: [p.name for p in a.state.current.participants] == ["b"], 15)
            assert [p.name for p in b.state.current.participants] == ["a"]
            for refused, reason in [
                (c, "unauthorized: token not signed by this room server"),
                (d, "certificate verify failed"),
            ]:
                error = await eventually(functools.partial(last_error, refused), 10)
                assert reason in error, error
                assert refused.state.current.call is CallState.RECONNECTING


def last_error(daemon: Daemon) -> str | None:
    return daemon.state.current.last_error


async def test_the_commands_refuse_an_open_server_and_issue_tokens_it_takes(
    tmp_path: Path, secret_file: Path
) -> None:
    vcalld = str(BIN / "vcalld")
    process = await asyncio.create_subprocess_exec(
        vcalld, "room-server", "--port", "0", stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == EX_CONFIG
    assert b"room_server.token_secret_file is not set" in stderr

    config = tmp_path / "vcalld.toml"
    config.write_text(f'[room_server]\ntoken_secret_file = "{secret_file}"\n')
    process = await asyncio.create_subprocess_exec(
        vcalld,
        "room-token",
        "--config",
        str(config),
        "--room",
        "hall",
        "--hours",
        "2",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    token = stdout.decode().strip()
    tokens.check(SECRET, token, "hall")
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.check(SECRET, token, "hall", now=time.time() + 2 * 3600 + 1)


def test_a_short_secret_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "short"
    secret.write_text("too short")
    config = tmp_path / "vcalld.toml"
    config.write_text(f'[device]\nid = "x"\n[room_server]\ntoken_secret_file = "{secret}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "vcalld", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EX_CONFIG
    assert "vcalld.toml:4: room_server.token_secret_file" in result.stderr, result.stderr
    assert "at least 32 bytes" in result.stderr
