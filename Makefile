# Two commands on a fresh machine: `make demo` runs the exporter on the embedded simulator,
# `make test` runs the whole test suite (it installs what the tests need first).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 10147

.PHONY: demo test tools bench dashboards kubernetes check-generated clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qubicle-exporter --demo --listen 127.0.0.1:$(PORT)

# promtool, Prometheus and Alertmanager come from Debian's packages.
tools:
	@./scripts/install-tools

test: $(BIN)/.installed tools
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench

dashboards: $(BIN)/.installed
	$(BIN)/python dashboards/generate.py

# Kubernetes manifests generated from alerts/ and dashboards/ (PrometheusRule, dashboard ConfigMaps).
kubernetes: $(BIN)/.installed
	$(BIN)/python deploy/kubernetes/generate.py

# Fails if a committed generated file differs from what its generator makes now.
check-generated: $(BIN)/.installed
	$(BIN)/python dashboards/generate.py --check
	$(BIN)/python deploy/kubernetes/generate.py --check

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
