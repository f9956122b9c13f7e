# Two entry points that work on a fresh machine with only Python 3.11+:
#   make run   set everything up, then archive the shipped briefing
#   make test  set everything up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/archiver run

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check archiver tests bench docs
	$(BIN)/mypy archiver

bench: $(STAMP)
	$(BIN)/python bench/extract_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
