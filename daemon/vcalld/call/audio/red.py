"""RTP payload for redundant audio (RFC 2198): older frames ride along with the newest."""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_BLOCK_BYTES = (1 << 10) - 1  # a 10-bit block length
MAX_TIMESTAMP_OFFSET = (1 << 14) - 1  # a 14-bit timestamp offset


class RedError(ValueError):
    """A payload that is not RFC 2198 redundant audio."""


@dataclass(frozen=True)
class Block:
    """One encoded frame: `age` RTP timestamp units older than the packet's timestamp."""

    age: int
    payload_type: int
    data: bytes


def pack(primary: Block, redundant: list[Block]) -> bytes:
    """`redundant` oldest first, as RFC 2198 orders them; blocks that cannot be described
    (too old, too large) are left out rather than failing the packet."""
    kept = [
        block
        for block in redundant
        if 0 < block.age <= MAX_TIMESTAMP_OFFSET and len(block.data) <= MAX_BLOCK_BYTES
    ]
    headers = b"".join(
        struct.pack(
            "!BH B",
            0x80 | block.payload_type,
            (block.age << 2) | (len(block.data) >> 8),
            len(block.data) & 0xFF,
        )
        for block in kept
    )
    return headers + bytes([primary.payload_type]) + b"".join(b.data for b in kept) + primary.data


def unpack(payload: bytes) -> list[Block]:
    """Every block, oldest first, the primary (age 0) last."""
    described: list[tuple[int, int, int]] = []
    offset = 0
    while True:
        if offset >= len(payload):
            raise RedError("RED header runs past the payload")
        first = payload[offset]
        if not first & 0x80:
            offset += 1
            break
        if offset + 4 > len(payload):
            raise RedError("truncated RED block header")
        word, low = struct.unpack_from("!HB", payload, offset + 1)
        described.append((first & 0x7F, word >> 2, ((word & 0x3) << 8) | low))
        offset += 4
    blocks = []
    for payload_type, age, length in described:
        if offset + length > len(payload):
            raise RedError("RED block runs past the payload")
        blocks.append(Block(age, payload_type, payload[offset : offset + length]))
        offset += length
    blocks.append(Block(0, first & 0x7F, payload[offset:]))
    return blocks
