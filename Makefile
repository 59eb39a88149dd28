# Two commands on a fresh machine: `make demo` runs the exporter on the embedded simulator,
# `make test` runs the whole test suite (it installs what the tests need first).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test tools bench dashboards screenshot check-generated clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qubicle-exporter --demo --listen 127.0.0.1:10147

# promtool, Prometheus, Alertmanager and chromium come from Debian's packages.
tools:
	@./scripts/install-tools

test: $(BIN)/.installed tools
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench

dashboards: $(BIN)/.installed
	$(BIN)/python dashboards/generate.py

# docs/img/wallboard.png: the demo's wallboard in Debian's chromium (installed by `make tools`).
screenshot: $(BIN)/.installed tools
	$(BIN)/python scripts/wallboard-screenshot

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
