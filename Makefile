# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# Trains sigmoid and softmax `small` models on bundled PBMC 68k (CPU) and prints their comparison.
demo: setup
	$(BIN)/python -m eval demo --out=runs/demo

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# The test command CI runs (.ci/run): lint, then the whole suite (GPU tests skip without a GPU), in two
# worker processes (pytest-xdist; 16 min instead of 22 on CI's 2 cores). TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --durations=15
