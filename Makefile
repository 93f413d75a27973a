# One target per daily action. `make demo` and `make test` set up .venv themselves.
# Python 3.13, the functions' runtime in Lambda: tests run on the version that runs there.
# pyenv's 3.13 where pyenv provides it (its python3.13 shim needs a version chosen), else the
# python3.13 on PATH.
PY ?= $(shell PYENV_VERSION=3.13.0 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3.13)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format compile golden docs bench fuzz clean venv sam-venv validate build serve browser llvm

# AWS SAM CLI in a virtualenv of its own (its pins clash with the dev tools').
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
# `sam build` of python3.13 functions looks for python3.13 on PATH.
SAM := SAM_CLI_TELEMETRY=0 PATH="$(dir $(PY)):$$PATH" $(SAM_VENV)/bin/sam

$(STAMP): pyproject.toml layers/loopline/requirements.txt
	@test -n "$(PY)" || { echo "python3.13 not found: install it (pyenv install 3.13) or set PY=/path/to/python3.13"; exit 1; }
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || { rm -rf $(VENV); $(PY) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(SAM_STAMP):
	@test -n "$(PY)" || { echo "python3.13 not found: install it (pyenv install 3.13) or set PY=/path/to/python3.13"; exit 1; }
	test -x $(SAM_VENV)/bin/python || $(PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP)

demo: $(STAMP)
	$(BIN)/python -m loopline.demo

# Debian's chromium, which the browser tests drive (playwright with the system browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# llvm-strip, which strips the layer's arm64 extensions (layers/loopline/Makefile).
llvm:
	command -v llvm-strip >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q llvm; }

test: $(STAMP) $(SAM_STAMP) browser llvm
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(SAM) validate --lint
	$(SAM) build
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: $(STAMP)
	for f in workflows/*.yaml; do \
	  n=$$(basename $$f .yaml); \
	  $(BIN)/loopline compile -q $$f -o statemachines/$$n.asl.json || exit 1; \
	done
	$(BIN)/python -m loopline.service.catalog workflows/*.yaml -o layers/loopline/loopline/catalog.json

golden: $(STAMP)
	for f in tests/golden/compile/*.yaml; do \
	  $(BIN)/loopline compile -q $$f -o $${f%.yaml}.asl.json || exit 1; \
	done
	# Split into a parent and children (tests/compiler/test_split.py: GOLDEN_LIMIT).
	for f in tests/golden/split/*.yaml; do \
	  rm -f $${f%.yaml}.asl.json $${f%.yaml}--part-*.asl.json; \
	  $(BIN)/loopline compile -q --max-bytes 5500 $$f -o $${f%.yaml}.asl.json || exit 1; \
	done
	for f in tests/golden/graph/*.yaml; do \
	  $(BIN)/loopline graph $$f --format mermaid -o $${f%.yaml}.mmd || exit 1; \
	  $(BIN)/loopline graph $$f --format dot -o $${f%.yaml}.dot || exit 1; \
	done

# docs/api.md, rendered from the API's OpenAPI document.
docs: $(STAMP)
	$(BIN)/python -m loopline.api.reference > docs/api.md

# template.yaml: the SAM transform and cfn-lint (ASL definitions included), offline.
validate: $(SAM_STAMP)
	$(SAM) validate --lint

# Build the functions and the layer into .aws-sam/ (no docker needed: arm64 wheels come from
# the registry, see BuildArchitecture in template.yaml).
build: $(SAM_STAMP) llvm
	$(SAM) build

# The task API on the local stack (template.yaml) on http://127.0.0.1:8000; prints a key.
serve: $(STAMP)
	$(BIN)/loopline serve

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The long fuzz run: FUZZ_EXAMPLES (default 20,000) new cases of each kind - workflow files,
# expressions, inputs - each under 5 s. `make test` runs a short, fixed profile of the same.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/pytest tests/fuzz -q -n 2 --hypothesis-show-statistics

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
