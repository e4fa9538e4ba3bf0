# Everything a newcomer needs: `make demo` and `make test` build .venv from requirements.lock (exact
# versions and hashes of every package, resolved from pyproject.toml for CPython 3.11 on Linux
# x86_64), then install this project into it without resolving anything else.
# `make lock` re-resolves the lock after a dependency change in pyproject.toml (keeping the
# current pins where they still fit); `make lock UPGRADE=1` moves every package to its newest
# allowed version. Commit requirements.lock with the change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV_VERSION := 0.13.9
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

.PHONY: setup system-deps demo test lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: setup
	$(BIN)/lbp-benefit demo --out out/demo

system-deps:
	bash scripts/install_system_deps.sh

test: setup system-deps
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

lock: setup
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml --extra test --extra spark $(LOCK_TARGET) --generate-hashes \
		--no-header $(if $(UPGRADE),--upgrade) -o $(LOCK)

clean:
	rm -rf $(VENV) out .pytest_cache
