# Set-up and everyday commands. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The MQTT tests run a real Mosquitto broker (Debian package); installed here when missing.
MOSQUITTO := $(firstword $(wildcard /usr/sbin/mosquitto /usr/bin/mosquitto /usr/local/sbin/mosquitto) /usr/sbin/mosquitto)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo demo-rtu test bench clean

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
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mosquitto \
	  || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mosquitto; }

test: $(STAMP) $(MOSQUITTO)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-run
