# SharpEyes — the two commands of the README's quick start, and a few more.
#   make demo   installs everything, then runs the whole system on embedded defaults
#   make test   installs everything, then runs the test suite against real servers
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test setup system-demo system-test lint format bench bench-quick bench-accuracy export-check clean

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

# The throughput benchmark (docs/benchmarks.md): K cameras over the local RTSP server,
# SharpEyes vs the OpenCV baseline vs the floor. BENCH_ARGS passes options, e.g.
#   make bench BENCH_ARGS="--ks 4,8,16 --rates 1"
BENCH_ARGS ?=
bench: system-demo $(STAMP)
	$(BIN)/sharpeyes bench $(BENCH_ARGS)

# A two-minute smoke run of the same benchmark into var/bench-quick.
bench-quick: system-demo $(STAMP)
	$(BIN)/sharpeyes bench --ks 2,4 --rates 1,0.2 --duration 10 --warmup 5 \
		--clip-seconds 20 --out var/bench-quick $(BENCH_ARGS)

# The optional export path (ultralytics + CPU torch), kept out of .venv and `make test`.
# On a machine without a local CPU torch wheel, point pip at PyTorch's CPU wheel index via
# TORCH_PIP_ARGS (a plain `pip install torch` pulls ~3 GB of CUDA libraries).
EXPORT_VENV    ?= .venv-export
TORCH_PIP_ARGS ?=
export-check: system-test
	$(PYTHON) -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/python -m pip install --quiet $(TORCH_PIP_ARGS) 'torch==2.13.0'
	$(EXPORT_VENV)/bin/python -m pip install --quiet --no-deps ultralytics ultralytics-thop torchvision
	$(EXPORT_VENV)/bin/python -m pip install --quiet matplotlib pillow scipy requests polars onnx onnxslim
	$(EXPORT_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	YOLO_OFFLINE=1 $(EXPORT_VENV)/bin/pytest -p no:cacheprovider tests/test_models_export.py tests/test_models_cli.py

# Counting accuracy and gathering episodes on real footage (benchmarks/results/accuracy.md).
bench-accuracy: $(STAMP)
	$(BIN)/python -m benchmarks.accuracy

clean:
	rm -rf $(VENV) $(EXPORT_VENV) var .pytest_cache .ruff_cache
