"""Who is in which room; knows nothing of sockets, so its rules are testable on their own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from vcalld.room.protocol import ProtocolError

Link = TypeVar("Link")


@dataclass
class Member(Generic[Link]):
    id: str
    name: str
    link: Link

    def describe(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass
class Rooms(Generic[Link]):
    max_participants: int
    _rooms: dict[str, dict[str, Member[Link]]] = field(default_factory=dict)

    def join(self, room: str, name: str, link: Link) -> tuple[Member[Link], list[Member[Link]]]:
        """Add a member; returns it and the members who were already there."""
        members = self._rooms.setdefault(room, {})
        if len(members) >= self.max_participants:
            raise ProtocolError("room-full", f"room {room!r} has {self.max_participants} members")
        member = Member(secrets.token_hex(6), name, link)
        others = list(members.values())
        members[member.id] = member
        return member, others

    def leave(self, room: str, member_id: str) -> list[Member[Link]]:
        """Remove a member; returns the members who remain."""
        members = self._rooms.get(room, {})
        members.pop(member_id, None)
        if not members:
            self._rooms.pop(room, None)
        return list(members.values())

    def find(self, room: str, member_id: str) -> Member[Link]:
        member = self._rooms.get(room, {}).get(member_id)
        if member is None:
            raise ProtocolError("unknown-participant", f"no participant {member_id!r} in {room!r}")
        return member

    def members(self, room: str) -> Iterator[Member[Link]]:
        yield from self._rooms.get(room, {}).values()

    def counts(self) -> dict[str, int]:
        return {room: len(members) for room, members in self._rooms.items()}
