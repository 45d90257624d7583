#!/bin/bash
# Builds dist/vcalld_<version>_<arch>.deb and checks it with lintian: natively for the host's
# architecture, or for arm64/armhf inside a test bed chroot under qemu-user. pip picks the wheels
# (and compiles what has none) for the machine it runs on, so every architecture builds natively.
# Usage: tools/deb.sh [amd64|arm64|armhf]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
host_arch=$(dpkg --print-architecture)
arch=${1:-$host_arch}
version=$(dpkg-parsechangelog -S Version)
testbed=$root/tools/testbed/testbed.sh
# Build chroots are kept apart from the test bed's install chroots, so that an install test
# never finds a build dependency (a compiler, a -dev package) already there.
export TESTBED_DIR=${VCALLD_BUILD_CHROOTS:-${XDG_CACHE_HOME:-$HOME/.cache}/vcalld-testbed/build}

build_native() {
    dpkg-buildpackage --build=binary --no-sign
    mv ../vcalld_"${version}"_"${arch}".{deb,buildinfo,changes} dist/
}

build_in_chroot() {
    local chroot=$TESTBED_DIR/arm/$arch
    command -v mmdebstrap >/dev/null || "$testbed" deps
    [[ -d $chroot ]] || "$testbed" arm-build "$arch"
    rm -rf "$chroot/build" && mkdir -p "$chroot/build/vcalld"
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - -c | tar -x -C "$chroot/build/vcalld"
    # pip in the chroot trusts what pip on this machine trusts (a TLS-inspecting proxy's CA).
    cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$chroot/build/ca.crt"
    "$testbed" arm-run "$arch" 'set -e; cd /build/vcalld
        export PIP_CERT=/build/ca.crt
        apt-get update -qq
        apt-get build-dep -y -qq --no-install-recommends . >/dev/null
        dpkg-buildpackage --build=binary --no-sign'
    mv "$chroot"/build/vcalld_"${version}"_"${arch}".{deb,buildinfo,changes} dist/
}

mkdir -p dist
rm -f dist/vcalld_*_"${arch}".*
case $arch in
    "$host_arch") build_native ;;
    arm64 | armhf) build_in_chroot ;;
    *) echo "tools/deb.sh: cannot build for $arch (host $host_arch; arm64 and armhf via qemu-user)" >&2
       exit 2 ;;
esac

deb=dist/vcalld_${version}_${arch}.deb
lintian --fail-on error "$deb"
echo "$deb: $(du -k "$deb" | cut -f1) KiB download, $(dpkg-deb -f "$deb" Installed-Size) KiB installed"
