# SharpEyes — the two commands of the README's quick start, and a few more.
#   make demo   installs everything, then runs the whole system on embedded defaults
#   make test   installs everything, then runs the test suite against real servers
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test setup system-demo system-test lint format bench bench-accuracy clean

demo: system-demo $(STAMP)
	$(BIN)/sharpeyes demo

test: system-test $(STAMP)
	$(BIN)/pytest

setup: system-test $(STAMP)

system-demo:
	@scripts/install-system-packages.sh demo

system-test:
	@scripts/install-system-packages.sh test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Counting accuracy and gathering episodes on real footage (benchmarks/results/accuracy.md).
bench-accuracy: $(STAMP)
	$(BIN)/python -m benchmarks.accuracy

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
