# slawatch: `make demo` and `make test` are the whole set-up (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench system-deps lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "slawatch needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@bash .ci/system-deps

test: system-deps $(STAMP)
	$(BIN)/python -m mypy config collectors agent watchdog
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m mypy config collectors agent watchdog

# Until the watchdog daemon exists, the demo validates the example configuration it will run
# and says so; it does not pretend to monitor anything.
demo: $(STAMP)
	$(BIN)/slawatch-agent check -c config/examples/agent.toml
	$(BIN)/slawatch-watchdog check -c config/examples/watchdog.toml --agent-config config/examples/agent.toml
	@echo "demo: the agent daemon is built (slawatch-agent run), the watchdog daemon is not yet;"
	@echo "demo: the live loopback scenario (agents + watchdog, dashboard on http://127.0.0.1:8470) arrives with it."

BENCHMARKS := bench/collectors.py bench/agent.py

bench: $(STAMP)
	@bash .ci/system-deps bench
	@set -e; for script in $(BENCHMARKS); do echo "== $$script"; (cd bench && ../$(BIN)/python $$(basename $$script) $(BENCH_ARGS)); done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache
