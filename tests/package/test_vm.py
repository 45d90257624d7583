"""The amd64 .deb on a real Debian 12 with systemd as PID 1 (the test bed VM, restricted network):
install offline, run the hardened unit in a call, watchdog, SIGTERM, the kernel's snd-aloop sound
card and vivid camera, each removed and returned, the screen through KMS/DRM with no desktop, a
bad config, upgrade, purge.

The steps share one VM and run in file order, as an administrator would take them."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from av import VideoFrame

from tests.package.testbed import (
    CONTROL_CLIENT,
    CONTROL_SCRIPT,
    ROOM_SECRET_FILE,
    ROOM_SERVER_CONFIG,
    GuestCommandError,
    Testbed,
    built_deb,
    device_config,
    until,
)
from vcalld.media.display.compositor import PLACEHOLDER_GREY
from vcalld.media.display.layout import self_view
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import bars_match, read_stamp

pytestmark = [pytest.mark.package, pytest.mark.timeout(600)]

ROOM_SERVER = "/usr/bin/vcalld room-server --config /root/room.toml"
PEER = "/usr/bin/vcalld run --config /root/peer.toml"


KIOSK_SOCKET = "/run/vcalld/control.sock"
PEER_SOCKET = "/run/vcalld-peer.sock"
KIOSK_CONFIG = device_config("kiosk", KIOSK_SOCKET)
# The peer only listens and looks: sending no video of its own leaves the emulated CPU to the
# kiosk (video it receives all the same).
PEER_CONFIG = device_config("peer", PEER_SOCKET, video=False)
TONE_HZ = 880.0
# Two daemons overload the emulated CPU (a third of their audio frames concealed, round trips
# of 0.5-2 s: /stats in the VM): the speaker's playout splices what comes late, which reads as
# a higher pitch (880 Hz heard as 920). A wrong rate anywhere on the path is a far larger error
# (16 kHz taken for 48: 3x; 44.1 for 48: 9 %).
TONE_TOLERANCE_HZ = 0.06 * TONE_HZ


@pytest.fixture(scope="module")
def vm() -> Iterator[Testbed]:
    testbed = Testbed("vcalld-package")
    testbed.boot()
    try:
        yield testbed
    finally:
        testbed.stop()


@pytest.fixture(scope="module")
def deb() -> Path:
    return built_deb("amd64")


def control(vm: Testbed, path: str, socket: str = KIOSK_SOCKET) -> dict[str, Any]:
    return vm.json(f"{CONTROL_CLIENT} {socket} {path}")  # type: ignore[no-any-return]


def command(vm: Testbed, name: str, **arguments: Any) -> dict[str, Any]:
    body = shlex.quote(json.dumps(arguments))
    reply: dict[str, Any] = vm.json(f"{CONTROL_CLIENT} {KIOSK_SOCKET} /command/{name} {body}")
    return reply


def in_call_with(vm: Testbed, names: list[str], socket: str = KIOSK_SOCKET) -> bool:
    try:
        state = control(vm, "/state", socket)
    except GuestCommandError:  # not listening yet: the daemon is (re)starting
        return False
    connected = [p["name"] for p in state["participants"] if p["connection"] == "connected"]
    return state["call"] == "in-call" and connected == names


def peer_received_from_kiosk(vm: Testbed) -> dict[str, Any]:
    """What the peer's sink measured from the kiosk: test pattern frames and the tone."""
    participants = control(vm, "/state", PEER_SOCKET)["participants"]
    ids = [p["id"] for p in participants if p["name"] == "kiosk"]
    media = control(vm, "/media", PEER_SOCKET)
    return media.get(ids[0], {}) if ids else {}


def test_offline_install_enables_but_does_not_start(vm: Testbed, deb: Path) -> None:
    output = vm.install_deb(deb)
    assert "vcalld check-config" in output  # postinst tells the administrator what to do
    assert vm.unit_property("vcalld", "UnitFileState") == "enabled"
    assert vm.unit_property("vcalld", "ActiveState") == "inactive"
    groups = vm.run("id -nG vcalld").split()
    assert {"vcalld", "video", "audio", "render"} <= set(groups)
    modes = vm.run("stat -c '%a %U:%G' /etc/vcalld /etc/vcalld/vcalld.toml").split("\n")
    assert modes[:2] == ["750 root:vcalld", "640 root:vcalld"], modes
    home_and_shell = vm.run("getent passwd vcalld | cut -d: -f6,7").strip()
    assert home_and_shell == "/var/lib/vcalld:/usr/sbin/nologin"
    # Bytecode compiled by postinst, since the service cannot write it under ProtectSystem.
    assert int(vm.run("find /usr/lib/vcalld -name '*.pyc' | wc -l")) > 1000
    assert vm.run("vcalld --version").startswith("vcalld ")


def test_service_is_ready_in_a_call_and_reports_to_the_journal(vm: Testbed) -> None:
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_CONFIG)
    vm.write("/root/peer.toml", PEER_CONFIG)
    vm.write(ROOM_SECRET_FILE, secrets.token_urlsafe(48))
    vm.run(f"chgrp vcalld {ROOM_SECRET_FILE} && chmod 0640 {ROOM_SECRET_FILE}")
    vm.write("/root/room.toml", ROOM_SERVER_CONFIG)
    vm.run(f"systemd-run --unit vcalld-room {ROOM_SERVER}")
    until(lambda: vm.status("exec 3<>/dev/tcp/127.0.0.1/8080") == 0, timeout=60)
    vm.run(f"systemd-run --unit vcalld-peer {PEER}")

    vm.write("/root/control.py", CONTROL_SCRIPT)
    started = time.monotonic()
    vm.run("systemctl start vcalld", timeout=120)  # Type=notify: returns at READY=1
    ready_seconds = time.monotonic() - started
    until(lambda: in_call_with(vm, ["peer"]), timeout=60)
    in_call_seconds = time.monotonic() - started
    print(f"systemctl start -> READY {ready_seconds:.1f} s, -> in call {in_call_seconds:.1f} s")
    assert vm.unit_property("vcalld", "StatusText").startswith("in-call in hall; 1 participant")
    assert json.loads(vm.run("vcallctl state"))["room"] == "hall"  # the packaged vcallctl works

    # Media flow under the hardened unit: the peer sees the kiosk's test pattern and hears its
    # 880 Hz tone.
    received = until(
        lambda: (m := peer_received_from_kiosk(vm)) and m["video"]["pattern_frames"] > 10 and m,
        timeout=60,
    )
    assert (received["video"]["width"], received["video"]["height"]) == (160, 120)
    assert abs(received["audio"]["frequency_hz"] - TONE_HZ) < TONE_TOLERANCE_HZ

    entries = [
        json.loads(line)
        for line in vm.run("journalctl -u vcalld -o json --no-pager").splitlines()
        if line.strip()
    ]
    ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "vcalld" and "VCALLD_ROOM" in e]
    assert any(e["VCALLD_ROOM"] == "hall" for e in ours), "no structured journal entry"
    assert all(e.get("_UID") == vm.run("id -u vcalld").strip() for e in ours)


def test_exposure_of_the_running_unit(vm: Testbed) -> None:
    report = vm.run("systemd-analyze security vcalld.service --no-pager | tail -1")
    exposure = float(re.search(r"exposure level for vcalld.service: ([\d.]+)", report)[1])  # type: ignore[index]
    assert exposure <= 2.0, report


def test_watchdog_is_fed_while_healthy_and_restarts_a_hung_daemon(vm: Testbed) -> None:
    hung_pid = vm.unit_property("vcalld", "MainPID")
    environment = vm.run(f"tr '\\0' '\\n' < /proc/{hung_pid}/environ")
    watchdog = int(re.search(r"^WATCHDOG_USEC=(\d+)$", environment, re.M)[1]) / 1e6  # type: ignore[index]
    time.sleep(watchdog * 1.2)
    assert vm.unit_property("vcalld", "NRestarts") == "0"
    vm.run(f"kill -STOP {hung_pid}")
    until(lambda: vm.unit_property("vcalld", "MainPID") not in ("0", hung_pid), watchdog + 60)
    assert vm.unit_property("vcalld", "NRestarts") == "1"
    journal = vm.run("journalctl -u vcalld --no-pager")
    assert "Watchdog timeout" in journal
    until(lambda: in_call_with(vm, ["peer"]), timeout=90)


def test_sigterm_leaves_the_call_and_the_peer_sees_it(vm: Testbed) -> None:
    vm.run("systemctl stop vcalld", timeout=60)
    assert vm.unit_property("vcalld", "Result") == "success"
    # The room server relayed the leave before the process was gone: a leave, not a timeout.
    left = journal_time(vm, "vcalld-room", r"kiosk \(\w+\) left room hall")
    stopped = journal_time(vm, "vcalld", "Deactivated successfully")
    assert left <= stopped
    until(lambda: control(vm, "/state", PEER_SOCKET)["participants"] == [], timeout=10)


KIOSK_ON_LOOPBACK = KIOSK_CONFIG.replace("[video]\n", "[video]\nenabled = false\n").replace(
    "[audio]\n",
    '[audio]\nsource = "alsa"\ndevice = "plughw:CARD=Loopback,DEV=1"\nsample_rate = 16000\n',
) + textwrap.dedent("""\
    [speaker]
    enabled = true
    device = "plughw:CARD=Loopback,DEV=0"
    [voice]
    echo_cancellation = false
    noise_suppression = false
    gain_control = false
    high_pass_filter = false
    """)


def peer_hears_itself(vm: Testbed) -> bool:
    """The peer's own 880 Hz tone comes back from the kiosk: played and captured again.
    Each look is printed, for a failure to show what came back instead."""
    audio = peer_received_from_kiosk(vm).get("audio", {})
    frequency = audio.get("frequency_hz")
    print(f"peer hears {frequency} Hz at {audio.get('level_dbfs')} dBFS")
    return frequency is not None and abs(frequency - TONE_HZ) < TONE_TOLERANCE_HZ


def sound_problems(vm: Testbed) -> tuple[str | None, str | None]:
    state = control(vm, "/state")
    return state["audio_source_problem"], state["speaker_problem"]


def test_kiosk_plays_and_captures_on_a_kernel_sound_card(vm: Testbed) -> None:
    """snd-aloop as the kiosk's sound card: what its speaker plays (device 0) its microphone
    hears (device 1), the hands-free echo with nothing in the way, so the peer hears its own
    tone come back. The microphone runs at 16 kHz, resampled to the call's 48 kHz. Voice
    processing is off: noise suppression removes exactly a steady tone, and this emulated CPU
    (25 times slower than the host for this work) cannot run the canceller beside two daemons
    in real time; `test_voice` checks it in real time through libasound."""
    vm.run("modprobe snd-aloop")
    assert "Loopback" in vm.run("vcalld devices")
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_ON_LOOPBACK)
    vm.run("systemctl start vcalld", timeout=120)
    until(lambda: in_call_with(vm, ["peer"]), timeout=90)
    until(lambda: peer_hears_itself(vm), timeout=60, interval=2)
    assert sound_problems(vm) == (None, None)


def test_sound_card_removed_and_returned_is_survived(vm: Testbed) -> None:
    """Unbinding the card is what unplugging a USB one does: open devices fail at once. The
    daemon says why, lets go of the card (so its module can even be unloaded), and takes it
    back when it returns, all within the same call and the same process."""
    restarts = vm.unit_property("vcalld", "NRestarts")
    try:
        vm.run("echo snd_aloop.0 > /sys/bus/platform/drivers/snd_aloop/unbind")
        until(lambda: all(sound_problems(vm)), timeout=30)
        microphone, speaker = sound_problems(vm)
        assert microphone is not None and microphone.startswith("microphone "), microphone
        assert speaker is not None and speaker.startswith("speaker "), speaker
        until(lambda: vm.status("rmmod snd_aloop") == 0, timeout=30)  # nothing holds it open
        assert in_call_with(vm, ["peer"])  # the call went on, with silence

        vm.run("modprobe snd-aloop")
        until(lambda: sound_problems(vm) == (None, None), timeout=30)
        until(lambda: in_call_with(vm, ["peer"]) and peer_hears_itself(vm), timeout=60, interval=2)
        assert vm.unit_property("vcalld", "NRestarts") == restarts
    finally:
        vm.run("systemctl stop vcalld", timeout=60)


VIVID = "modprobe vivid n_devs=1 node_types=0x1"  # one capture node: the webcam input
KIOSK_WITH_CAMERA = KIOSK_CONFIG.replace(
    "[video]\nwidth = 160\nheight = 120\n",
    '[video]\nsource = "camera"\ndevice = "vivid"\nwidth = 320\nheight = 180\n',
) + textwrap.dedent("""\
    [video.controls]
    test_pattern = "100% White"
    osd_text_mode = "None"
    """)
WHITE, BLACK = 235, 16  # luma, video range
RED = (60, 100)  # BT.601 or BT.709 red, whichever vivid picks for the colour space


def kiosk_luma(vm: Testbed) -> float | None:
    """How bright the peer sees the kiosk's picture now."""
    luma: float | None = peer_received_from_kiosk(vm).get("video", {}).get("luma")
    return luma


def camera_problem(vm: Testbed) -> str | None:
    problem: str | None = control(vm, "/state")["video_source_problem"]
    return problem


def test_vcalld_devices_lists_the_kernel_camera(vm: Testbed) -> None:
    vm.run(VIVID)
    listing = vm.run("vcalld devices")
    assert "  /dev/video0: vivid (vivid, platform:vivid-000)" in listing
    assert re.search(r"    YUYV: .*640x480 \(1/2/4/5/10/12\.5/15/25 fps\)", listing), listing
    assert "      brightness (0 to 255, step 1, default 128) = 128" in listing
    assert "      test_pattern (menu: 0: 75% Colorbar, 1: 100% Colorbar," in listing
    assert "      button (button: set to true)" in listing  # as force_key_frame is one


def test_kiosk_sends_the_kernel_camera_with_its_controls(vm: Testbed) -> None:
    """linuxpy on vivid under the hardened unit: the camera found by its card name, NV12 (no
    decoding) chosen for 320x180 at 10 fps, the picture that config's control asks for
    reaching the peer, then changed by a command."""
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_WITH_CAMERA)
    vm.run("systemctl start vcalld", timeout=120)
    until(lambda: in_call_with(vm, ["peer"]), timeout=90)
    until(lambda: (kiosk_luma(vm) or 0) > WHITE - 10, timeout=60)
    video = peer_received_from_kiosk(vm)["video"]
    assert (video["width"], video["height"]) == (320, 180)
    assert video["fps"] >= 6, video
    assert "camera /dev/video0 (vivid): NV12 320x180 at 10 fps" in vm.run(
        "journalctl -u vcalld --no-pager"
    )
    assert camera_problem(vm) is None

    reply = command(vm, "set-camera-control", control="test_pattern", value="100% Red")
    assert reply["ok"], reply
    until(lambda: RED[0] < (kiosk_luma(vm) or 0) < RED[1], timeout=30)
    # A button control, pushed through linuxpy (passthrough's force_key_frame is one).
    assert command(vm, "set-camera-control", control="button", value=True)["ok"]
    reply = command(vm, "set-camera-control", control="brightness", value=256)
    assert reply["error"] == {
        "code": "invalid-control",
        "message": "value: brightness takes 0 to 255, not 256",
    }


def test_camera_removed_and_returned_is_survived(vm: Testbed) -> None:
    """Unbinding vivid is what unplugging a USB camera does. The peer keeps a picture (black),
    the state says why, nothing holds the module, and the camera comes back in the same call
    and process with the control the command set."""
    restarts = vm.unit_property("vcalld", "NRestarts")
    try:
        vm.run("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind")
        until(lambda: camera_problem(vm) is not None, timeout=30)
        assert (camera_problem(vm) or "").startswith("camera "), camera_problem(vm)
        until(lambda: kiosk_luma(vm) == BLACK, timeout=30)  # the track went on, in black
        until(lambda: vm.status("rmmod vivid") == 0, timeout=30)
        assert in_call_with(vm, ["peer"])

        vm.run(VIVID)
        until(lambda: camera_problem(vm) is None, timeout=30)
        until(lambda: RED[0] < (kiosk_luma(vm) or 0) < RED[1], timeout=60)
        assert in_call_with(vm, ["peer"])
        assert vm.unit_property("vcalld", "NRestarts") == restarts
    finally:
        vm.run("systemctl stop vcalld", timeout=60)


JOURNAL_KIOSK = "journalctl -u vcalld --no-pager -o cat"
KIOSK_ON_ITS_SCREEN = KIOSK_CONFIG + textwrap.dedent("""\
    [display]
    renderer = "display"
    driver = "kmsdrm"
    self_view = true
    """)


def test_kiosk_shows_the_call_on_its_display_with_no_desktop(vm: Testbed) -> None:
    """KMS/DRM on the VM's display device (the kernel's bochs driver, Mesa's kms_swrast)
    under the hardened unit, read back by QEMU: the peer's tile (it sends no video: "camera
    off" on grey, with its name), and the kiosk's own test pattern in the self view."""
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_ON_ITS_SCREEN)
    vm.run("systemctl start vcalld", timeout=120)
    try:
        until(lambda: in_call_with(vm, ["peer"]), timeout=90)
        journal = until(lambda: re.search(r"display: (\d+)x(\d+) at", vm.run(JOURNAL_KIOSK)), 60)
        width, height = int(journal[1]), int(journal[2])
        assert control(vm, "/state")["display_problem"] is None

        def self_view_shows_the_pattern() -> bool:
            pixels = vm.screen()
            corner = self_view(width, height, 160, 120)
            seen = VideoFrame.from_ndarray(
                np.ascontiguousarray(
                    pixels[corner.y : corner.y + corner.height, corner.x : corner.x + corner.width]
                ),
                format="rgb24",
            ).reformat(width=160, height=120, format="yuv420p")
            return read_stamp(picture_plane(seen, 0)) is not None and bars_match(
                picture_plane(seen, 0), picture_plane(seen, 1), picture_plane(seen, 2)
            )

        until(self_view_shows_the_pattern, timeout=60, interval=2)
        pixels = vm.screen()
        assert pixels.shape == (height, width, 3)
        assert (pixels[20:60, 20:200] == PLACEHOLDER_GREY).all()  # the peer: no picture
        middle = pixels[height // 2 - 30 : height // 2 + 30, width // 2 - 200 : width // 2 + 200]
        assert (middle.min(axis=2) > 200).sum() > 100  # "camera off" written on it
    finally:
        vm.run("systemctl stop vcalld", timeout=60)


def journal_time(vm: Testbed, unit: str, pattern: str) -> float:
    """When `unit` last logged a line matching `pattern` (guest clock, seconds)."""
    lines = vm.run(f"journalctl -u {unit} -o short-unix --no-pager").splitlines()
    return float([line for line in lines if re.search(pattern, line)][-1].split()[0])


def test_bad_config_exits_78_without_a_restart_loop(vm: Testbed) -> None:
    restarts = int(vm.unit_property("vcalld", "NRestarts"))
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_CONFIG.replace("fps = 10", 'fps = "ten"'))
    assert vm.status("systemctl start vcalld", timeout=60) != 0
    time.sleep(5)  # longer than RestartSec
    assert vm.unit_property("vcalld", "ExecMainStatus") == "78"
    assert vm.unit_property("vcalld", "ActiveState") == "failed"
    assert int(vm.unit_property("vcalld", "NRestarts")) == restarts
    # journald may file the process's last stderr lines after systemd's own.
    until(lambda: "vcalld.toml:12: video.fps" in vm.run("journalctl -u vcalld -n 20"), timeout=30)


def test_upgrade_keeps_the_edited_conffile_and_restarts_the_service(
    vm: Testbed, deb: Path, tmp_path: Path
) -> None:
    vm.write("/etc/vcalld/vcalld.toml", KIOSK_CONFIG)
    vm.run("systemctl reset-failed vcalld && systemctl start vcalld", timeout=120)
    before = vm.unit_property("vcalld", "MainPID")
    upgrade = next_version(deb, tmp_path)
    vm.install_deb(upgrade)
    assert vm.run("dpkg-query -W -f '${Version}' vcalld") == "0.1.0+upgrade"
    assert vm.run("cat /etc/vcalld/vcalld.toml") == KIOSK_CONFIG
    assert vm.run("stat -c '%a %U:%G' /etc/vcalld/vcalld.toml").strip() == "640 root:vcalld"
    assert vm.unit_property("vcalld", "MainPID") not in ("0", before)  # restarted by postinst
    until(lambda: in_call_with(vm, ["peer"]), timeout=90)


def test_purge_removes_user_state_and_files(vm: Testbed) -> None:
    vm.run("apt-get purge -y vcalld", timeout=120)
    assert vm.status("pgrep -f 'vcalld run --config /etc/vcalld'") != 0  # stopped, not orphaned
    assert vm.status("getent passwd vcalld") != 0
    assert vm.status("getent group vcalld") != 0
    for path in ("/etc/vcalld", "/var/lib/vcalld", "/usr/lib/vcalld", "/usr/bin/vcalld"):
        assert vm.status(f"test -e {path}") != 0, f"{path} left behind"
    assert vm.unit_property("vcalld", "LoadState") == "not-found"


def next_version(deb: Path, folder: Path) -> Path:
    """The same package as version 0.1.0+upgrade, as the next release would be."""
    tree = folder / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"(?m)^Version: .*$", "Version: 0.1.0+upgrade", control.read_text()))
    upgraded = folder / "vcalld_0.1.0+upgrade_amd64.deb"
    # Fastest compression: xz takes 50 s here for a package only ever unpacked once.
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "-b", str(tree), str(upgraded)], check=True)
    shutil.rmtree(tree)
    return upgraded
