"""The arm64 and armhf .debs in the test bed's Debian 12 chroots (qemu-user): they install with
apt, their configuration checks work, and `vcalld demo` carries a call between two daemons."""

from __future__ import annotations

import pytest

from tests.package.testbed import ArmChroot, GuestCommandError, built_deb

pytestmark = [pytest.mark.package, pytest.mark.timeout(1200)]

ARCHES = ["arm64", "armhf"]
MACHINES = {"arm64": "aarch64", "armhf": "armv7l"}


@pytest.fixture(params=ARCHES)
def installed(request: pytest.FixtureRequest) -> ArmChroot:
    chroot = ArmChroot(request.param)
    chroot.install_deb(built_deb(request.param))
    return chroot


def test_installs_checks_its_config_and_carries_a_call(installed: ArmChroot) -> None:
    chroot = installed
    try:
        assert chroot.run("uname -m").strip() == MACHINES[chroot.arch]
        assert chroot.run("dpkg-query -W -f '${Status}' vcalld") == "install ok installed"
        assert chroot.run("systemctl is-enabled vcalld").strip() == "enabled"
        assert "room lobby" in chroot.run("vcalld check-config /etc/vcalld/vcalld.toml")
        chroot.run("printf '[video]\\nfps = \"ten\"\\n' > /tmp/bad.toml")
        with pytest.raises(GuestCommandError) as failed:
            chroot.run("vcalld check-config /tmp/bad.toml")
        assert failed.value.returncode == 78
        assert "/tmp/bad.toml:2: video.fps" in failed.value.stderr

        # Two daemons and the room server on the chroot's loopback; exit 0 only if the peer's
        # test pattern and tone arrived. At 640x480@30 the two encoders starve each other under
        # qemu-user (about 10 fps, then the peer connection closes).
        output = chroot.run(
            "vcalld demo --with-peer --duration 40 --port 18080 --size 160x120 --fps 10",
            timeout=300,
        )
        assert "media from demo-peer arrived" in output
    finally:
        chroot.run("apt-get purge -y vcalld >/dev/null")
    assert chroot.status("getent passwd vcalld") != 0
    assert chroot.status("test -e /usr/lib/vcalld") != 0
