# Two commands on a fresh machine: `make run` (set up, index the built-in article, serve the chatbot)
# and `make test` (set up with dev tools, then ruff, mypy and pytest).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python compiles on install; pip caches the wheel so this happens once per machine.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install dev browser lint typecheck pytest injection bench eval clean

run: install
	$(BIN)/rag serve

test: dev browser lint typecheck pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned: 2.13.0 is the CPU build on this machine's disk; anything else pulls CUDA.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# Browser tests drive Debian's chromium through Playwright (its own browser download cannot work here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "error: install Debian's chromium (sudo apt-get install chromium)"; exit 1; fi; \
	fi

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy

# Everything, the real-model injection corpus run included (~3 min; 0 of 37 answers hijacked on 2026-11-30).
pytest: dev
	$(BIN)/pytest $(PYTEST_ARGS)

injection: dev
	$(BIN)/pytest -m injection $(PYTEST_ARGS)

bench: dev
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.million
	$(BIN)/python -m bench.knobs
	$(BIN)/python -m bench.report

eval: install
	$(BIN)/rag eval

clean:
	rm -rf var reports test-artifacts .pytest_cache .mypy_cache .ruff_cache
