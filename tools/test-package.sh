#!/bin/bash
# The package tests (tests/package) for the given architectures (default: amd64): builds each
# .deb, readies the test bed (the amd64 VM snapshot, the arm64/armhf install chroots; each is
# kept in the test bed's cache once built), then runs pytest inside a network namespace that
# has only `lo`. amd64 runs in the VM under systemd; arm64 and armhf in chroots under qemu-user.
# Usage: PYTEST=.venv/bin/pytest tools/test-package.sh [--prepare-only|--prepared] [amd64] [arm64] [armhf]
# --prepare-only builds and readies, and stops there (`make test` does that beside the host
# tests); --prepared then runs the tests on what it built.
set -euo pipefail

mode=all
case ${1:-} in
    --prepare-only) mode=prepare; shift ;;
    --prepared) mode=test; shift ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
testbed=tools/testbed/testbed.sh
chroots=${TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vcalld-testbed}/arm
arches=("${@:-amd64}")
tests=()

"$testbed" deps >/dev/null
for arch in "${arches[@]}"; do
    [[ $mode == test ]] || tools/deb.sh "$arch"
    # A kiosk image carries the package's dependencies; the tests install it offline.
    depends=$(dpkg-deb -f dist/vcalld_*_"$arch".deb Depends)
    case $arch in
        amd64)
            # The VM image is built with them (rebuilt only when the list changes).
            TESTBED_EXTRA_PACKAGES=$(tr ',' '\n' <<<"$depends" | sed 's/|.*//; s/(.*)//' | xargs) \
                "$testbed" prepare
            tests+=(tests/package/test_vm.py)
            ;;
        arm64 | armhf)
            [[ -d $chroots/$arch ]] || "$testbed" arm-build "$arch"
            [[ $mode == test ]] || "$testbed" arm-run "$arch" \
                "apt-get satisfy -y -qq --no-install-recommends '$depends' >/dev/null"
            tests+=("tests/package/test_arm.py::test_installs_checks_its_config_and_carries_a_call[$arch]")
            ;;
        *) echo "tools/test-package.sh: no test bed for $arch" >&2; exit 2 ;;
    esac
done

[[ $mode != prepare ]] || exit 0
exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${PYTEST:?}" -m package "${tests[@]}"
