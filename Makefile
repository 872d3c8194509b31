# The README's two commands, `make train` and `make test`, set up .venv themselves
# (a fresh machine needs only Python 3.11). Extra arguments: make train ARGS="model.dropout=0.3"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The install is "strict" editable: a tree of links to the sources in build/, a real folder on the
# path, where Hydra's plugin scan finds hydra_plugins/ (setuptools' default finder hides it). Edits
# show at once; a file added or removed needs the links made again, so the stamp's name follows
# the list of the package's files.
FILES := $(shell find mnist_hydra hydra_plugins conf -not -path '*/__pycache__*' 2>/dev/null | sort | cksum | cut -d' ' -f1)
READY := $(VENV)/.ready-$(FILES)

.PHONY: setup train test test-fast lint bench clean

# Reinstalled when pyproject.toml changes; an install that fails leaves no stamp.
$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable '.[test]' --config-settings editable_mode=strict
	rm -f $(VENV)/.ready*
	touch $@

setup: $(READY)

train: $(READY)
	$(BIN)/python -m mnist_hydra.train $(ARGS)

# Tests run on every core (pytest-xdist), one worker each: most of their time is commands in
# subprocesses, forked from a Python that loaded TensorFlow once per worker (tests/warm_python.py);
# a third worker on two cores was no faster (651 s against 637 s). loadgroup: the tests of one
# xdist_group (Ray's) share a worker.
test: $(READY)
	$(BIN)/python -m pytest -n auto --dist loadgroup $(PYTEST_ARGS)

# The edit-test loop: every test that runs in this process (no command line started, no
# model trained by a fixture), in well under a minute. CI runs the whole suite (make test).
test-fast: $(READY)
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# ruff, and the import contracts of pyproject.toml (the layers, no circles, no TensorFlow
# before the checks).
lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: $(READY)
	$(BIN)/python benchmarks/epoch_overhead.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun build *.egg-info
