# Set-up and everyday commands. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The MQTT tests run a real Mosquitto broker (Debian package); installed here when missing.
MOSQUITTO := $(firstword $(wildcard /usr/sbin/mosquitto /usr/bin/mosquitto /usr/local/sbin/mosquitto) /usr/sbin/mosquitto)
# The panel test drives Debian's Chromium through its ChromeDriver; installed here when missing.
CHROMEDRIVER := /usr/bin/chromedriver
# The panel checks passwords through PAM (pamela loads libpam); Debian has it, installed here when missing.
LIBPAM := $(firstword $(wildcard /lib/*/libpam.so.0 /usr/lib/*/libpam.so.0) /usr/lib/libpam.so.0)
# The panel's service-user test traces pam_unix's system calls against the unit's filter.
STRACE := /usr/bin/strace
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: demo demo-rtu test bench docs clean

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m controller.demo config/sites/demo.toml

demo-rtu: $(STAMP)
	$(BIN)/python -m controller.demo config/sites/demo-rtu.toml

$(MOSQUITTO):
	@echo "installing mosquitto (Debian package) for the MQTT tests"
	$(APT_INSTALL) mosquitto || { $(SUDO) apt-get update -q && $(APT_INSTALL) mosquitto; }

$(CHROMEDRIVER):
	@echo "installing chromium and chromium-driver (Debian packages) for the panel test"
	$(APT_INSTALL) chromium chromium-driver || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium chromium-driver; }

$(LIBPAM):
	@echo "installing libpam (Debian packages) for the panel's login"
	$(APT_INSTALL) libpam0g libpam-modules || { $(SUDO) apt-get update -q && $(APT_INSTALL) libpam0g libpam-modules; }

$(STRACE):
	@echo "installing strace (Debian package) for the panel's service-user test"
	$(APT_INSTALL) strace || { $(SUDO) apt-get update -q && $(APT_INSTALL) strace; }

# Two workers, a test file each at a time (pytest-xdist): the end-to-end tests mostly wait on processes.
test: $(STAMP) $(MOSQUITTO) $(CHROMEDRIVER) $(LIBPAM) $(STRACE)
	$(BIN)/pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

# docs/state-machines.md: the device and lane machines drawn from their own transitions
docs: $(STAMP)
	$(BIN)/python -m controller.state_diagrams

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-run
