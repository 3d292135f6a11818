# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LISTEN ?= 127.0.0.1:10041

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start the simulated BCC API and the exporter against it (no BCE account needed)
run: $(STAMP)
	$(BIN)/python scripts/run_demo.py --listen $(LISTEN)

## test: ruff, mypy and the whole pytest suite (installs Prometheus for the stack tests)
test: $(STAMP)
	scripts/install-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

## bench: run the performance benchmark against the simulator and print its table
bench: $(STAMP)
	$(BIN)/python -m bench
