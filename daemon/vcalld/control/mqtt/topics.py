"""The device's topic tree: `<base>/<device id>/{availability,state,event,stats,command/<name>}`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    base: str
    device_id: str
    group: str
    discovery_prefix: str

    @property
    def device(self) -> str:
        return f"{self.base}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.device}/availability"

    @property
    def state(self) -> str:
        return f"{self.device}/state"

    @property
    def event(self) -> str:
        return f"{self.device}/event"

    @property
    def stats(self) -> str:
        return f"{self.device}/stats"

    def command(self, name: str) -> str:
        return f"{self.device}/command/{name}"

    @property
    def command_filters(self) -> list[str]:
        """This device's commands, and those sent to its whole group."""
        return [f"{self.device}/command/+", f"{self.base}/{self.group}/command/+"]

    def command_name(self, topic: str) -> str | None:
        for prefix in (f"{self.device}/command/", f"{self.base}/{self.group}/command/"):
            if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
                return topic[len(prefix) :]
        return None

    def reply_problem(self, topic: str) -> str | None:
        """Why a requester's reply topic is refused, or None. Replies must not land on
        topics other consumers trust: this device's own tree or Home Assistant's discovery."""
        if not topic or len(topic) > 1024:
            return "must be 1 to 1024 characters"
        if "+" in topic or "#" in topic or "\0" in topic:
            return "must not contain wildcards"
        if topic.startswith("$"):
            return "must not start with $"
        if topic.startswith((f"{self.device}/", f"{self.discovery_prefix}/")):
            return f"must not be under {self.device}/ or {self.discovery_prefix}/"
        return None
