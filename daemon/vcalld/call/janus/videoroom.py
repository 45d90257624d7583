"""The VideoRoom plugin's requests and events, as vcalld uses them
(https://janus.conf.meetecho.com/docs/videoroom)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from vcalld.call.janus.session import Handle, JanusError, PluginReply
from vcalld.config.models import JanusConfig

PLUGIN = "janus.plugin.videoroom"
NO_SUCH_ROOM = 426
ROOM_EXISTS = 427
RoomId = int | str


def room_id(room: str) -> RoomId:
    """Janus's rooms are numbers unless it runs with string_ids; a name in digits is a number."""
    return int(room) if room.isdecimal() else room


@dataclass(frozen=True)
class Feed:
    """A publisher in the room: what we subscribe to, who the participant is, and the
    streams (mids) it sends now."""

    id: int | str
    display: str
    mids: frozenset[str] = frozenset()

    @property
    def participant_id(self) -> str:
        return str(self.id)


def feeds(data: dict[str, Any]) -> list[Feed]:
    """The publishers a `joined` or `event` message lists (those with something to send)."""
    found = []
    for entry in data.get("publishers", []):
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        streams = [stream for stream in entry.get("streams", []) if isinstance(stream, dict)]
        active = frozenset(str(s["mid"]) for s in streams if "mid" in s and not s.get("disabled"))
        if streams and not active:
            continue
        found.append(Feed(entry["id"], str(entry.get("display") or entry["id"]), active))
    return found


def gone(data: dict[str, Any]) -> int | str | None:
    """The feed a `leaving` or `unpublished` event ends (not our own "ok")."""
    for key in ("leaving", "unpublished"):
        value = data.get(key)
        if value is not None and value != "ok":
            return value  # type: ignore[no-any-return]
    return None


class Room:
    """One VideoRoom as configured: joining (creating it when missing), publishing,
    subscribing."""

    def __init__(self, room: str, config: JanusConfig) -> None:
        self.id = room_id(room)
        self._config = config

    async def join(self, handle: Handle, display: str) -> PluginReply:
        body = self._with_pin({"request": "join", "ptype": "publisher", "display": display})
        try:
            return await handle.message(body)
        except JanusError as error:
            if error.code != NO_SUCH_ROOM or not self._config.create_room:
                raise
        await self._create(handle)
        return await handle.message(body)

    async def subscribe(self, handle: Handle, feed: Feed, private_id: int | None) -> PluginReply:
        body: dict[str, Any] = {"request": "join", "ptype": "subscriber"}
        body["streams"] = [{"feed": feed.id}]  # every stream it publishes
        if private_id is not None:
            body["private_id"] = private_id
        return await handle.message(self._with_pin(body))

    async def add_streams(self, handle: Handle, feed: Feed, mids: frozenset[str]) -> PluginReply:
        """Adds streams a feed has started sending since we subscribed (video turned on):
        Janus adds them to a subscription only when asked, with a new offer."""
        streams = [{"feed": feed.id, "mid": mid} for mid in sorted(mids)]
        return await handle.message({"request": "update", "subscribe": streams})

    async def _create(self, handle: Handle) -> None:
        config = self._config
        body: dict[str, Any] = {
            "request": "create",
            "room": self.id,
            "publishers": config.publishers,
            "bitrate": config.bitrate_kbps * 1000,
            "audiocodec": "opus",
            "videocodec": "vp8,h264",  # H.264 for a source that encodes its own
        }
        _put_secret(body, "secret", config.room_secret)
        _put_secret(body, "pin", config.room_pin)
        _put_secret(body, "admin_key", config.admin_key)
        try:
            await handle.message(body)
        except JanusError as error:
            if error.code != ROOM_EXISTS:  # someone else made it first
                raise

    def _with_pin(self, body: dict[str, Any]) -> dict[str, Any]:
        body["room"] = self.id
        _put_secret(body, "pin", self._config.room_pin)
        return body


def _put_secret(body: dict[str, Any], key: str, secret: SecretStr | None) -> None:
    if secret is not None:
        body[key] = secret.get_secret_value()
