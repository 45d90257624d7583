"""Property: whatever arrives on a command topic, a `vcalld run` process answers it and lives.

Hypothesis generates command names and payloads (raw bytes, JSON of any shape, and objects
built from the real argument and envelope names with values of every type); each one is sent
over MQTT 5 with a response topic and must get a well-formed reply.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.mqtt import BlockingRequester, Mosquitto, vcalld_on_broker
from vcalld.errors import VcalldError

# Round trips: 4,000 in the default run (CI's budget), any number with FUZZ_MQTT_COMMANDS
# (`FUZZ_MQTT_COMMANDS=100000 make pytest PYTEST_ARGS=tests/test_mqtt_fuzz.py`). Not a VCALLD_
# name: the daemon under test would take that for a config override and refuse to start.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]  # 0: as long as the count takes
EXAMPLES = int(os.environ.get("FUZZ_MQTT_COMMANDS", "4000"))
DEVICE = "vcalld/fuzzed"
REPLY_TOPIC = "fuzz/replies"
# Every refusal the daemon documents (a command this device cannot carry out, say
# stop-recording where [recorder] is off, is refused with its own code); never the generic
# "error" nor "internal-error", which mean an input reached a path that failed.
KNOWN_CODES = {error.code for error in VcalldError.__subclasses__()} - {"error", "internal-error"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
known_keys = st.sampled_from(
    ["audio", "video", "room", "command", "id", "reply_to", "expires_at", "volume", ""]
)
argument_objects = st.dictionaries(known_keys | st.text(max_size=12), json_values, max_size=5)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    argument_objects.map(lambda value: json.dumps(value).encode()),
)
# Topic levels: no separators or wildcards, and no control or unassigned characters, which
# mosquitto answers by disconnecting the publisher (MQTT 5 section 1.5.4).
command_names = st.sampled_from(["join", "leave", "set-mute", "get-state"]) | st.text(
    alphabet=st.characters(
        blacklist_characters="/+#", blacklist_categories=["Cc", "Cs", "Co", "Cn"]
    ),
    min_size=1,
    max_size=24,
)


@dataclass
class Device:
    process: subprocess.Popen[bytes]
    requester: BlockingRequester
    answered: int = 0

    def ask(self, name: str, payload: bytes) -> dict[str, Any]:
        _, body = self.requester.round_trip(f"{DEVICE}/command/{name}", payload)
        reply: dict[str, Any] = json.loads(body)
        self.answered += 1
        return reply


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    folder = tmp_path_factory.mktemp("fuzz")
    broker = Mosquitto(folder)
    broker.start()
    try:
        no_stats = "stats_interval_seconds = 0\n"
        with vcalld_on_broker(folder, broker, "fuzzed", REPLY_TOPIC, no_stats) as running:
            fuzzed = Device(*running)
            yield fuzzed
            assert fuzzed.answered >= EXAMPLES, f"only {fuzzed.answered} payloads were sent"
    finally:
        broker.stop()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=command_names, payload=payloads)
@example(name="stop-recording", payload=b"")  # found by the fuzzer: refused as no-recorder
def test_every_command_payload_is_answered(device: Device, name: str, payload: bytes) -> None:
    reply = device.ask(name, payload)
    assert isinstance(reply["ok"], bool), reply
    if reply["ok"]:
        assert reply["state"]["device_id"] == "fuzzed", reply
    else:
        assert reply["error"]["code"] in KNOWN_CODES, reply
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert device.process.poll() is None, "vcalld died"
