# The two commands in README.md: `make demo` and `make test`. Both install what they need
# (Debian packages, a virtualenv, the package) on a fresh Debian 12 machine, as root or via sudo.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Build headers for pyalsaaudio, systemd-python and the binding to WebRTC's audio processing;
# chromium and mosquitto are the real peers the tests start, espeak-ng speaks in the echo
# tests; systemd brings systemd-analyze and systemd-sysusers for the unit's tests; SDL2,
# SDL2_ttf and the DejaVu font draw the screen (PySDL2 loads them), on Xvfb and weston in its
# X11 and Wayland tests; gst-rtsp-server (through Debian's python3-gi) is the RTSP server
# the stream source's test plays from; python3-pip installs a plugin the way a device's
# owner does (the Debian package's environment has no pip).
APT_PACKAGES := python3-venv python3-dev gcc g++ pkg-config libasound2-dev libsystemd-dev \
	libwebrtc-audio-processing-dev iproute2 util-linux chromium mosquitto systemd espeak-ng \
	libsdl2-2.0-0 libsdl2-ttf-2.0-0 fonts-dejavu-core xvfb weston libopus0 \
	python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	python3-pip
DEMO_ARGS ?= --with-peer --duration 30
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Tools to build and check the Debian package (its Build-Depends are in APT_PACKAGES already).
DEB_PACKAGES := debhelper dpkg-dev lintian

# Installs those of the Debian packages $(1) that are missing.
define apt_install
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: demo test lint pytest test-package bench bench-audio bench-group bench-loss bench-video-loss bench-video-send bench-loss-testbed bench-mqtt bench-faults bench-soak bench-video bench-processors bench-composite deb clean

demo: $(VENV)/.installed
	$(BIN)/vcalld demo $(DEMO_ARGS)

# The package's build and the test bed's preparation (2-3 minutes of one core on a fresh
# machine) run beside the host tests, which leave a core idle most of the time; the package's
# tests run after them, each on a quiet machine (both have real-time checks).
test: lint $(VENV)/.installed .stamp-deb-tools
	@mkdir -p dist
	@$(SUDO) tools/test-package.sh --prepare-only $(PACKAGE_ARCHES) > dist/prepare.log 2>&1 & \
	prepare=$$!; \
	$(MAKE) --no-print-directory pytest; tests=$$?; \
	wait $$prepare || { cat dist/prepare.log; echo "building or readying the package failed"; exit 1; }; \
	tail -n 3 dist/prepare.log; \
	[ $$tests -eq 0 ] || exit $$tests; \
	$(SUDO) env PYTEST=$(BIN)/pytest tools/test-package.sh --prepared $(PACKAGE_ARCHES)

lint: $(VENV)/.installed
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy

# WebRTC tests run in a private network namespace that has only `lo`, so no ICE candidate on
# another address can ever be tried, and in a mount namespace of their own, where the
# recorder's full-disk test mounts a small tmpfs.
pytest: $(VENV)/.installed
	$(SUDO) unshare --net --mount sh -c 'ip link set lo up && exec $(BIN)/pytest $(PYTEST_ARGS)'

# The .deb installed in the test bed (tools/testbed): amd64 in a Debian 12 VM with systemd as
# PID 1, part of `make test`. PACKAGE_ARCHES="amd64 arm64 armhf" adds the ARM chroots, whose
# builds under qemu-user take about 12 minutes each on two cores, too long for CI.
PACKAGE_ARCHES ?= amd64
test-package: $(VENV)/.installed .stamp-deb-tools
	$(SUDO) env PYTEST=$(BIN)/pytest tools/test-package.sh $(PACKAGE_ARCHES)

bench: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.join_and_cpu $(BENCH_ARGS)'

bench-audio: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.audio_path $(BENCH_ARGS)'

# FFmpeg's command line is the peer: the same decoding and composing, in the same run.
bench-video: $(VENV)/.installed
	$(call apt_install,ffmpeg)
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.camera_display $(BENCH_ARGS)'

bench-loss: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.audio_loss $(BENCH_ARGS)'

# One sender's video under loss, received by vcalld, by aiortc as shipped, and by Chromium.
bench-video-loss: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.video_loss $(BENCH_ARGS)'

bench-loss-testbed: $(VENV)/.installed .stamp-deb-tools
	$(SUDO) tools/deb.sh amd64
	$(SUDO) $(BIN)/python -m bench.audio_loss_testbed $(BENCH_ARGS)

# A 7-person call from one participant: vcalld via Janus, in a mesh, and Chromium via Janus.
bench-group: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.group_call $(BENCH_ARGS)'

# One sender's video to 1 and 6 peers at 720p30, and at 1080p60 passed through and encoded.
bench-video-send: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.video_send $(BENCH_ARGS)'

# The built-in frame processors, with FFmpeg's nearest filters in the same process as the peer.
bench-processors: $(VENV)/.installed
	$(BIN)/python -m bench.processors $(BENCH_ARGS)

bench-composite: $(VENV)/.installed
	$(BIN)/python -m bench.composite $(BENCH_ARGS)

bench-mqtt: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.mqtt_latency $(BENCH_ARGS)'

# An hour's call with commands, watching memory, threads, fds, tasks and lag (bench/soak.py).
bench-soak: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.soak $(BENCH_ARGS)'

# Faults one after another in one call, and how long each takes to heal (bench/faults.py).
bench-faults: $(VENV)/.installed
	$(SUDO) unshare --net --mount sh -c 'ip link set lo up && exec $(BIN)/python -m bench.faults $(BENCH_ARGS)'

# dist/vcalld_<version>_<ARCH>.deb, checked by lintian: ARCH is this machine's by default;
# arm64 and armhf build in a test bed chroot under qemu-user (tools/deb.sh).
ARCH ?=
deb: .stamp-deb-tools
	$(SUDO) tools/deb.sh $(ARCH)

.stamp-deb-tools: .stamp-apt
	$(call apt_install,$(DEB_PACKAGES))
	touch $@

.stamp-apt: Makefile tools/install-janus.sh
	$(call apt_install,$(APT_PACKAGES))
	$(SUDO) tools/install-janus.sh
	touch $@

$(VENV)/.installed: .stamp-apt pyproject.toml setup.py daemon/vcalld/media/voice/_webrtc_apm.cpp
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .stamp-apt .stamp-deb-tools build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
