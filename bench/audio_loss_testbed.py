"""Audio under netem loss in the test bed VM: the installed .deb, two daemons (audio only)
and the room server on the guest's loopback, and the kernel's netem dropping the given share
of every UDP packet there (media, RTCP, ICE checks; each crosses lo once, so both ways lose
at the rate). TCP, i.e. the room server's signalling, is left alone: see the issue note.

Figures are the receiving daemon's own call statistics (how each 20 ms frame was played, and
its playout delay) over the window. The guest's CPU is emulated (~5x slower than the host),
so this checks function under a real kernel's loss, not timing. Needs root and the built
package: `make bench-loss-testbed`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.table import markdown_table
from tests.package.testbed import (
    CONTROL_SCRIPT,
    GuestCommandError,
    Testbed,
    built_deb,
    device_config,
    until,
)

RATES = (0.0, 0.1, 0.3, 0.5, 0.7)
WARMUP_SECONDS = 6.0
SOCKETS = {"alice": "/run/alice.sock", "bob": "/run/bob.sock"}
# UDP to a netem band; everything else to the untouched bands of a prio qdisc.
NETEM = """\
tc qdisc del dev lo root 2>/dev/null || true
tc qdisc add dev lo root handle 1: prio
tc qdisc add dev lo parent 1:3 handle 30: netem loss {percent}%
tc filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip protocol 17 0xff flowid 1:3
"""


def stats(vm: Testbed, device_id: str) -> dict[str, Any]:
    reply: dict[str, Any] = vm.json(f"python3 /root/control_get.py /stats {SOCKETS[device_id]}")
    return reply


def in_call(vm: Testbed) -> bool:
    try:
        participants = stats(vm, "alice")["participants"]
    except (GuestCommandError, json.JSONDecodeError, KeyError):
        return False
    return len(participants) == 1 and participants[0].get("receive_kbps") is not None


def start(vm: Testbed) -> None:
    vm.write("/root/control_get.py", CONTROL_SCRIPT)
    for name, socket in SOCKETS.items():
        vm.write(f"/root/{name}.toml", device_config(name, socket, video=False))
    vm.run(
        "systemd-run --unit bench-room /usr/bin/vcalld room-server --host 127.0.0.1 --port 8080\n"
        "sleep 3\n"
        "for name in alice bob; do\n"
        "  systemd-run --unit bench-$name /usr/bin/vcalld run --config /root/$name.toml\n"
        "done\n"
    )
    until(lambda: in_call(vm), timeout=180, interval=2)


def measure(vm: Testbed, loss: float, seconds: float) -> list[str]:
    vm.run(NETEM.format(percent=round(100 * loss)))
    time.sleep(WARMUP_SECONDS)
    stats(vm, "alice")  # the sample the window's rates are taken from
    time.sleep(seconds)
    (quality,) = stats(vm, "alice")["participants"] or [{}]
    frames = quality.get("audio_frames_percent") or {}
    delivered = sum(frames.get(source, 0.0) for source in ("primary", "red", "fec"))
    return [
        f"{100 * loss:.0f}",
        f"{quality.get('loss_percent', float('nan')):.1f}",
        *(f"{frames.get(source, 0.0):.1f}" for source in ("primary", "fec", "red")),
        f"{delivered:.1f}",
        f"{frames.get('concealed', 0.0):.1f}",
        f"{quality.get('audio_playout_delay_ms') or 0:.0f}",
        str(quality.get("audio_red_copies_sent")),
        "yes" if quality.get("receive_kbps") else "**no**",
    ]


HEADER = [
    "netem loss %", "measured loss %", "primary %", "FEC %", "RED %", "delivered %",
    "concealed %", "playout delay ms", "RED copies the peer sends", "call up after",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="of loss per rate")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    args = parser.parse_args()
    vm = Testbed("vcalld-bench-loss")
    vm.boot()
    try:
        vm.install_deb(built_deb("amd64"))
        start(vm)
        rows = []
        for loss in args.rates:
            rows.append(measure(vm, loss, args.seconds))
            print(" | ".join(rows[-1]), flush=True)
    finally:
        vm.stop()
    print()
    print(markdown_table(HEADER, rows))
    print(f"\n`make bench-loss-testbed` ({args.seconds:.0f} s of loss per rate)")


if __name__ == "__main__":
    main()
