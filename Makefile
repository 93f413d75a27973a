# One target per daily action. `make demo` and `make test` set up .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format compile golden bench clean venv

$(STAMP): pyproject.toml layers/loopline/requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m loopline.demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
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

golden: $(STAMP)
	for f in tests/golden/compile/*.yaml; do \
	  $(BIN)/loopline compile -q $$f -o $${f%.yaml}.asl.json || exit 1; \
	done

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
