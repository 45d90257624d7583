"""Room tokens: what lets a participant into one room of the room server, for a while.

A token is a JSON Web Token signed with HMAC-SHA256 (RFC 7519) whose claims name the room and
when the token expires, so any service that knows the room server's secret can issue one with
a standard JWT library. Nothing else is accepted: no other algorithm (`none` least of all), no
token without an expiry, no token for another room.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

HEADER = {"alg": "HS256", "typ": "JWT"}
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


class TokenError(Exception):
    """Why a token does not admit its bearer; the reason is safe to tell the client."""


def read_secret(path: Path) -> bytes:
    """The secret in `path` (surrounding whitespace is not part of it)."""
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: a room token secret needs at least {MIN_SECRET_BYTES} bytes")
    return secret


def issue(secret: bytes, room: str, seconds: float, *, now: float | None = None) -> str:
    """A token for `room` that expires `seconds` from `now`."""
    expires = int((time.time() if now is None else now) + seconds)
    signed = f"{_encode_json(HEADER)}.{_encode_json({'room': room, 'exp': expires})}"
    return f"{signed}.{_encode(_signature(secret, signed))}"


def check(secret: bytes, token: str, room: str, *, now: float | None = None) -> None:
    """Raises TokenError unless `token` is ours, unexpired and for `room`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a token")
    header, claims, signature = parts
    try:
        given = _decode(signature)
    except ValueError:
        raise TokenError("not a token") from None
    if not hmac.compare_digest(given, _signature(secret, f"{header}.{claims}")):
        raise TokenError("token not signed by this room server")
    # Signed by us, so these parse; they are still checked, as a secret may be shared.
    if _decode_json(header).get("alg") != HEADER["alg"]:
        raise TokenError("token algorithm not accepted")
    payload = _decode_json(claims)
    expires = payload.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenError("token has no expiry")
    if expires <= (time.time() if now is None else now):
        raise TokenError("token expired")
    if payload.get("room") != room:
        raise TokenError("token is for another room")


def _signature(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _encode_json(value: dict[str, Any]) -> str:
    return _encode(json.dumps(value, separators=(",", ":")).encode())


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(str(error)) from None


def _decode_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(text))
    except ValueError:
        raise TokenError("not a token") from None
    if not isinstance(value, dict):
        raise TokenError("not a token")
    return value
