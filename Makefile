# OrderFlow developer commands. Everything runs from .venv, built on first use.
#
#   make install    create .venv and install requirements/dev.txt (again when a requirements file changes)
#   make run        the whole system locally (embedded PostgreSQL/Redis/Kafka unless the env names servers)
#   make services   only the servers; prints the variables to export for running processes one by one
#   make test       lint, import contracts, schema check, pytest (real servers under var/test)
#   make lint | format | schemas | clean

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run services test lint format schemas clean

install: $(STAMP)

$(STAMP): $(wildcard requirements/*.txt)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements/dev.txt
	touch $@

run: $(STAMP)
	$(BIN)/python -m orderflow.stack run

services: $(STAMP)
	$(BIN)/python -m orderflow.stack services

test: $(STAMP)
	$(BIN)/python -m orderflow.stack test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schemas: $(STAMP)
	$(BIN)/python -m contracts.export

clean:
	rm -rf var/test

# make bench [QUICK=1]: the benchmark suite on real servers under var/bench (QUICK=1: < 3 minutes).
# Writes bench/results/latest.json and latest.png and the figures in docs/benchmarks.md. wrk (a
# compiled load generator) is installed from Debian's packages when possible; without it the
# HTTP benchmark falls back to a multi-process Python generator.
.PHONY: bench
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null 2>&1; }; }; } || \
		echo "bench: wrk is not installed; the HTTP benchmark uses the Python load generator"
	$(BIN)/python -m bench $(if $(filter 1 yes true,$(QUICK)),--quick)
