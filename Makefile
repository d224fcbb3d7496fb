# slawatch: `make demo` and `make test` are the whole set-up (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench system-deps lint clean
# A recipe that fails leaves no target behind (a half-made .venv is made again next time).
.DELETE_ON_ERROR:

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "slawatch needs Python 3.11 or newer")'
	@PYTHON=$(PYTHON) bash .ci/system-deps venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@PYTHON=$(PYTHON) bash .ci/system-deps

test: system-deps $(STAMP)
	$(BIN)/python -m mypy config collectors agent watchdog
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m mypy config collectors agent watchdog

# The real daemons on loopback: a misbehaving provider, two agents, the watchdog on :8470.
demo: $(STAMP)
	$(BIN)/python -m slawatch.watchdog.demo --dir .demo

# Every bench/*.py script, then one table (figure, target from DESIGN.md, peer measured in the same run),
# also written with the machine description to bench/RESULTS.md. BENCH_ARGS (e.g. --quick) go to every script.
bench: $(STAMP)
	@bash .ci/system-deps bench
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache
