# Everything a newcomer needs: `make demo` and `make test` build .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $(STAMP)

demo: setup
	$(BIN)/lbp-benefit demo --out out/demo

system-deps:
	bash scripts/install_system_deps.sh

test: setup system-deps
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

clean:
	rm -rf $(VENV) out .pytest_cache
