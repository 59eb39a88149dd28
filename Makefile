# Two commands on a fresh machine: `make demo` runs the exporter on the embedded simulator,
# `make test` runs the whole test suite (it installs what the tests need first), `make test-fast`
# the tests that start no process and need no Debian package.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 10147

.PHONY: demo test test-fast lint mutate tools bench dashboards kubernetes screenshot check-generated clean

# setuptools' 'Editable installation' notice warns of folders named like the package in the working
# directory: here that folder is the package itself. Only that notice is muted.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install --quiet -e '.[test]'
	touch $@

DEMO_LISTEN ?= 127.0.0.1:$(PORT)
demo: $(BIN)/.installed
	$(BIN)/qubicle-exporter --demo --listen $(DEMO_LISTEN) --agent-metrics

# promtool, Prometheus, Alertmanager and chromium come from Debian's packages.
tools:
	@./scripts/install-tools

test: $(BIN)/.installed tools
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# The tests that start no process and need no Debian package (well under a minute).
test-fast: $(BIN)/.installed
	$(BIN)/pytest -m "not e2e"

# Mutation score (docs/testing.md): the alert rules' comparators and thresholds flipped one by one
# under promtool, then mutmut over the modules that hold the promises, one module at a time
# (MUTATE_MODULES=shard make mutate for one). Slow on 2 cores: not part of `make test` nor CI.
MUTATE_MODULES ?= snapshot render collector shard exposition poller accounts web.auth web.config web.ratelimit kazoo.auth
mutate: $(BIN)/.installed tools
	$(BIN)/pip install --quiet -e '.[test,mutate]'
	$(BIN)/python scripts/mutate_rules.py
	for m in $(MUTATE_MODULES); do $(BIN)/mutmut run "exporter.$$m.*" || exit 1; done
	$(BIN)/mutmut results

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

# docs/img/wallboard.png: the demo's wallboard in Debian's chromium (installed by `make tools`).
screenshot: $(BIN)/.installed tools
	$(BIN)/python scripts/wallboard-screenshot

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis mutants
