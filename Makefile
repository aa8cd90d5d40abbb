# Fresh machine: `make test` or `make demo` creates .venv, installs the pinned set, runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test test-fast demo lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch 2.14.1 (CUDA build, runs on CPU) is pinned: with the CPU-only 2.13 wheel
	# torchvision cannot import, and open_clip and transformers' CLIP break with it.
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(PY) -m pip check
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest -q --durations=25

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m evalsuite.demo

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/speed/embed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
