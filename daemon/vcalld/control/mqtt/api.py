"""The daemon's MQTT face: commands in; replies, state, availability and events out.

Conventions (../shared/DESIGN.md): state and availability are retained, commands never are (a
retained command is a stale replay and is ignored), every command gets a reply with `ok` and,
on failure, `error.code` and `error.message` naming the field. Replies go to the MQTT 5
response topic with the request's correlation data, or to `reply_to` with `id` for MQTT 3.1.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

from vcalld.commands import CommandResult, parse_command
from vcalld.config.models import MqttConfig
from vcalld.control.feeds import EventFeed, stats_samples
from vcalld.control.mqtt import homeassistant
from vcalld.control.mqtt.link import Message, MqttLink
from vcalld.control.mqtt.requests import CommandRequest, parse_request
from vcalld.control.mqtt.topics import Topics
from vcalld.daemon import Daemon
from vcalld.errors import BusyError, InternalError, InvalidCommandError, VcalldError
from vcalld.state import DeviceState

log = logging.getLogger(__name__)
ONLINE, OFFLINE = "online", "offline"
INBOX_SIZE = 64
REMEMBERED_REPLIES = 256


class MqttControl:
    def __init__(self, daemon: Daemon, config: MqttConfig) -> None:
        self._daemon = daemon
        self._stats_interval = config.stats_interval_seconds
        self._homeassistant = config.homeassistant
        device_id = daemon.config.device.id
        self.topics = Topics(
            config.base_topic, device_id, config.group, config.homeassistant.discovery_prefix
        )
        self.link = MqttLink(
            config,
            client_id=config.client_id or f"vcalld-{device_id}",
            will=(self.topics.availability, OFFLINE),
            on_connected=self._connected,
            on_message=self._received,
            on_status=lambda status: daemon.state.update(mqtt=status),
        )
        # Commands run one at a time, in arrival order: "join" then "leave" must not race.
        self._inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=INBOX_SIZE)
        # QoS 1 may deliver twice; a repeated id or correlation gets the first reply again.
        self._replies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Events first, so a consumer reading `state` after an event sees the change.
        self._events = EventFeed(daemon.state, self._event)
        daemon.state.listen(self._publish_state)

    async def run(self) -> None:
        """Until cancelled; `stop()` first for a clean `offline`."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.link.run(), name="mqtt-link")
            tasks.create_task(self._serve_commands(), name="mqtt-commands")
            if self._stats_interval > 0:
                tasks.create_task(self._publish_stats(), name="mqtt-stats")

    async def stop(self) -> None:
        """Say `offline` ourselves: a clean disconnect does not fire the Last Will."""
        final = self.link.publish(self.topics.availability, OFFLINE, retain=True)
        await self.link.disconnect([final])

    # From the link.

    def _connected(self) -> None:
        filters = self.topics.command_filters
        if self._homeassistant.enabled:
            filters = [*filters, homeassistant.BIRTH_TOPIC]
        self.link.subscribe(filters)
        self.link.publish(self.topics.availability, ONLINE, retain=True)
        self._publish_discovery()
        self._publish_state(self._daemon.state.current)

    def _publish_discovery(self) -> None:
        """Retained, so Home Assistant finds the device whenever it starts; an empty payload
        when disabled removes a device that an earlier configuration announced."""
        payload = ""
        if self._homeassistant.enabled:
            device = self._daemon.config.device
            description = homeassistant.discovery_payload(
                self.topics, device.display_name, self._homeassistant.rooms
            )
            payload = json.dumps(description)
        self.link.publish(homeassistant.discovery_topic(self.topics), payload, retain=True)

    def _received(self, message: Message) -> None:
        if message.topic == homeassistant.BIRTH_TOPIC:
            if message.payload == b"online":  # Home Assistant restarted: announce again
                self._publish_discovery()
                self._publish_state(self._daemon.state.current)
            return
        if self.topics.command_name(message.topic) is None:
            return
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            request = parse_request(message.payload)
            failure = CommandResult.failure(BusyError(f"more than {INBOX_SIZE} commands queued"))
            self._reply(message, request, _reply_body(request, failure))

    # Commands.

    async def _serve_commands(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("MQTT command on %s failed unexpectedly", message.topic)
                request = parse_request(message.payload)
                failure = CommandResult.failure(InternalError("command not completed"))
                self._reply(message, request, _reply_body(request, failure))

    async def _handle(self, message: Message) -> None:
        name = self.topics.command_name(message.topic) or ""
        if message.retain:
            # A retained command is the broker replaying an old message to a new subscriber.
            log.warning("ignoring retained command %s", message.topic)
            self._event({"event": "command-ignored", "command": name, "reason": "retained"})
            return
        request = parse_request(message.payload)
        key = _dedupe_key(message, request)
        if key is not None and key in self._replies:
            self._reply(message, request, {**self._replies[key], "duplicate": True})
            return
        result = await self._execute(name, request)
        body = _reply_body(request, result)
        if key is not None:
            self._replies[key] = body
            while len(self._replies) > REMEMBERED_REPLIES:
                self._replies.popitem(last=False)
        self._reply(message, request, body)
        if not result.ok:
            self._event({"event": "command-failed", "command": name, "error": body["error"]})

    async def _execute(self, name: str, request: CommandRequest) -> CommandResult:
        try:
            if request.problem is not None:
                raise request.problem
            request.check_fresh()
            command = parse_command(name, request.arguments)
        except VcalldError as error:
            return CommandResult.failure(error)
        return await self._daemon.execute(command)

    def _reply(self, message: Message, request: CommandRequest, body: dict[str, Any]) -> None:
        topic = message.response_topic or request.reply_to
        if topic is None:
            return
        problem = self.topics.reply_problem(topic)
        if problem is not None:
            refusal = InvalidCommandError(f"reply_to: {problem}")
            self._event({"event": "reply-refused", "topic": topic[:200], "error": str(refusal)})
            return
        self.link.publish(topic, json.dumps(body), qos=1, correlation_data=message.correlation_data)

    async def _publish_stats(self) -> None:
        """Call quality every interval while in a call; QoS 0, as a late sample is no use."""
        async for stats in stats_samples(self._daemon, self._stats_interval):
            if self.link.connected:
                self.link.publish(self.topics.stats, json.dumps(stats), qos=0)

    # State and events.

    def _publish_state(self, state: DeviceState) -> None:
        self.link.publish(self.topics.state, state.model_dump_json(), retain=True)

    def _event(self, event: dict[str, Any]) -> None:
        self.link.publish(self.topics.event, json.dumps(event))


def _reply_body(request: CommandRequest, result: CommandResult) -> dict[str, Any]:
    # No `error: null` on success, but the state keeps its full shape (`room: null` too).
    body = {
        key: value for key, value in result.model_dump(mode="json").items() if value is not None
    }
    if request.id is not None:
        body["id"] = request.id
    return body


def _dedupe_key(message: Message, request: CommandRequest) -> str | None:
    if message.correlation_data is not None:
        return "c:" + message.correlation_data.hex()
    if request.id is not None:
        return f"i:{request.id!r}"
    return None
