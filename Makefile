# Two commands on a fresh machine: `make demo` runs the exporter on the embedded simulator,
# `make test` runs the whole test suite (it installs what the tests need first), `make test-fast`
# the tests that start no process and need no Debian package.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-fast mutate tools bench dashboards check-generated clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qubicle-exporter --demo --listen 127.0.0.1:10147

# promtool, Prometheus and Alertmanager come from Debian's packages.
tools:
	@./scripts/install-tools

test: $(BIN)/.installed tools
	$(BIN)/pytest

# The tests that start no process and need no Debian package (well under a minute).
test-fast: $(BIN)/.installed
	$(BIN)/pytest -m "not e2e"

# Mutation score (docs/testing.md): the alert rules' comparators and thresholds flipped one by one
# under promtool, then mutmut over the modules that hold the promises, one module at a time
# (MUTATE_MODULES=shard make mutate for one). Slow on 2 cores: not part of `make test` nor CI.
MUTATE_MODULES ?= snapshot collector shard poller webconfig kazoo.auth
mutate: $(BIN)/.installed tools
	$(BIN)/pip install --quiet -e '.[test,mutate]'
	$(BIN)/python scripts/mutate_rules.py
	for m in $(MUTATE_MODULES); do $(BIN)/mutmut run "exporter.$$m.*" || exit 1; done
	$(BIN)/mutmut results

bench: $(BIN)/.installed
	$(BIN)/python -m bench

dashboards: $(BIN)/.installed
	$(BIN)/python dashboards/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis mutants
