# Two entry points that work on a fresh machine with only Python 3.11+:
#   make run   set up what running needs (the package and its core dependencies), then archive
#              the shipped briefing
#   make test  set up the test toolchain as well (the [test] extra), then run the test suite
# Each install has its own stamp, so `make run` never makes `make test` skip its install.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# `.[test]` includes everything `.` needs, so it satisfies `make run` too.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/archiver run

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check archiver tests bench docs
	$(BIN)/mypy archiver

bench: $(TEST_STAMP)
	$(BIN)/python bench/extract_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
