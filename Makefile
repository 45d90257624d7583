# The two commands in README.md: `make demo` and `make test`. Both install what they need
# (Debian packages, a virtualenv, the package) on a fresh Debian 12 machine, as root or via sudo.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Build headers for pyalsaaudio and systemd-python; chromium and mosquitto are the real peers
# the tests start; systemd brings systemd-analyze and systemd-sysusers for the unit's tests.
APT_PACKAGES := python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev iproute2 \
	util-linux chromium mosquitto systemd
DEMO_ARGS ?= --with-peer --duration 30
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint pytest bench bench-mqtt clean

demo: $(VENV)/.installed
	$(BIN)/vcalld demo $(DEMO_ARGS)

test: lint pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy

# WebRTC tests run in a private network namespace that has only `lo`, so no ICE candidate on
# another address can ever be tried.
pytest: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/pytest $(PYTEST_ARGS)'

bench: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.join_and_cpu $(BENCH_ARGS)'

bench-mqtt: $(VENV)/.installed
	$(SUDO) unshare --net sh -c 'ip link set lo up && exec $(BIN)/python -m bench.mqtt_latency $(BENCH_ARGS)'

.stamp-apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@

$(VENV)/.installed: .stamp-apt pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .stamp-apt build *.egg-info .pytest_cache .mypy_cache .ruff_cache
