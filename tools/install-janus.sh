#!/bin/sh
# Installs Debian's janus and janus-demos for the tests without ever running Janus as a
# service: with Debian's /etc/janus it would listen on every address (HTTP and WebSocket API,
# Streaming-plugin RTP ports). The tests start their own, loopback only, from config/janus.
#
# Only when this script installs the package does it mask janus.service (systemd) or keep
# invoke-rc.d from starting it (no systemd, as in a container); `systemctl unmask janus`
# undoes the first for someone who wants the service after all.
set -eu
installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed'; }
if installed janus && installed janus-demos; then
	exit 0
fi
if ! installed janus; then
	ln -sf /dev/null /etc/systemd/system/janus.service
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
echo "installing Debian packages: janus janus-demos (service masked)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends janus janus-demos
