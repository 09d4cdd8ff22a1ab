# usbprintd — developer entry points. `make run` and `make test` are all a newcomer needs.
PYTHON   ?= /usr/bin/python3
VENV     ?= .venv
STATE    ?= .state
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
# The .ipk is built from the project's wheel by Debian's python3 (no virtualenv needed).
APT_IPK  := python3-setuptools python3-wheel
APT_BENCH := p910nd procps iproute2
APT_TEST := netcat-openbsd cups qemu-system-x86 busybox-static shellcheck chromium \
            avahi-utils avahi-daemon dbus-daemon socat kmod libusb-1.0-0 python3-venv \
            $(APT_BENCH) $(APT_IPK)

.PHONY: run test test-deps venv lint unit integration e2e browser fuzz bench ipk clean test-py313

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[test,dev,mdns]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/usbprintd dev --state-dir $(STATE)

# $(call apt_ensure,packages): install the Debian packages of the list that are missing.
define apt_ensure
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

test-deps:
	$(call apt_ensure,$(APT_TEST))

# PyPI is reachable wherever the venv can be built, so the feed's source hashes are checked too.
test: test-deps venv
	$(VENV)/bin/ruff check src tests bench
	USBPRINTD_NETWORK_TESTS=1 $(PY) -m pytest -q tests/unit tests/integration
	$(MAKE) e2e browser

unit: test-deps venv
	$(PY) -m pytest -q tests/unit

integration: test-deps venv
	$(PY) -m pytest -q tests/integration

e2e: test-deps venv
	$(PY) -m pytest -q tests/e2e

browser: test-deps venv
	$(PY) -m pytest -q tests/browser

lint: venv
	$(VENV)/bin/ruff check src tests bench

# Optional, not part of `make test`: coverage-guided fuzzing (atheris) of every parser of outside
# input, FUZZ_SECONDS per harness, one process; crashes land in tests/fuzz/crashes/ and fail.
FUZZ_SECONDS ?= 60
fuzz: venv
	@$(PY) -c 'import atheris' 2>/dev/null || $(PIP) install -q 'atheris>=2.3'
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

# Optional, not part of `make test`: the unit and integration layers on Python 3.13, the
# interpreter of OpenWrt 25.12, in a Debian 13 chroot bootstrapped once (root; a few minutes).
test-py313:
	$(call apt_ensure,debootstrap)
	bash tests/python313/run.sh $(PYTEST_ARGS)

# make bench BENCH_ARGS=--quick for a 1-2 minute smoke run; bench/run.py --help lists the knobs.
bench: venv
	$(call apt_ensure,$(APT_BENCH))
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(PIP) install -q -e '.[bench]'
	$(PY) bench/run.py $(BENCH_ARGS)

# The OpenWrt 24.10 package (opkg); apk packages for 25.12 come from the SDK (docs/openwrt.md).
ipk:
	$(call apt_ensure,$(APT_IPK))
	$(PYTHON) openwrt-feed/tools/build_ipk.py --out build

clean:
	rm -rf $(VENV) $(STATE) build dist
