# vertex-serving-pipelines: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test demo lint compile bench clean

help: ## show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv and install the package with its dev extras (fast when nothing changed)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: make PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: install ## check the import layers, then run every test: unit, integration and end to end
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

demo: install ## run the main job end to end on the local default
	$(BIN)/vsp demo

lint: install ## check style and common bugs with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

compile: install ## compile the pipelines to build/*.yaml (IMAGE=registry path of the component image)
	$(BIN)/vsp compile $(if $(IMAGE),--component-image $(IMAGE))

bench: install ## run the benchmarks under bench/ and print their ratios (load from wrk: apt-get install wrk)
	@command -v wrk >/dev/null || { echo "make bench needs wrk for load from a separate process: apt-get install wrk"; exit 2; }
	$(BIN)/python -m bench

clean: ## remove build outputs (keeps .venv)
	rm -rf build .pytest_cache
