# Fresh machine: `make test` or `make demo` creates .venv, installs the pinned set, runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test test-fast demo demo-sweep lint bench clean

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
	$(PY) -m examples.demo

# After `make demo` (run first when its base model is missing): a 2 x 2 sweep of the lace
# fine-tune, its two soups and a WiSE-FT curve of trial 3, all scored onto the demo's board.
DEMO_DB := reports/demo/results.duckdb
DEMO_DATA := --data demo_footwear=demo/data/footwear-prepared --data demo_general=demo/data/general
demo-sweep: setup
	test -d demo/runs/base/best || DEMO_NO_SERVE=1 $(PY) -m examples.demo
	$(PY) -m finetune sweep --config configs/demo_lace.yaml --space configs/demo_sweep.yaml --out demo/runs/sweep
	$(PY) -m finetune soup demo/runs/sweep --out demo/runs/soups --overwrite
	for kind in uniform greedy; do $(PY) -m evalsuite --db $(DEMO_DB) score demo/runs/soups/$$kind \
	    --benchmarks demo_footwear,demo_general $(DEMO_DATA) --bootstrap 200 || exit 2; done
	$(PY) -m finetune wise --base demo/runs/base/best --finetuned demo/runs/sweep/trial-3/best \
	    --out demo/runs/wise --alphas 0:1:0.25 --overwrite --score demo_footwear,demo_general \
	    --db $(DEMO_DB) $(DEMO_DATA) --bootstrap 200
	$(PY) -m evalsuite --db $(DEMO_DB) report --out reports/demo
	@echo "leaderboard: $(PY) -m evalsuite --db $(DEMO_DB) leaderboard"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/speed/embed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
