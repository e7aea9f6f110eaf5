#!/usr/bin/env bash
# Run two or more recipes on the same data and seeds, then print one comparison table and write a plot.
#
#   launch/compare_strategies.sh [--seeds "0 1 2"] [--out runs/compare] [--launcher "torchrun --standalone --nproc_per_node 2"] \
#       recipes/grpo_builtin_baseline.yaml recipes/token_adaptive_builtin.yaml recipes/token_scavenger_builtin.yaml [-- --max_steps 50 ...]
#
# The first recipe is the baseline: the table gives every other recipe's ratios to it. Flags after `--` are passed
# to every run (CLI flags override recipe values). Runs go one after another: on a small CPU, parallel runs only
# slow each other down. Each run writes <out>/<recipe>/seed_<s>/results.json; launch/compare.py reads them.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS="0 1 2"
OUT="runs/compare"
LAUNCHER="${LAUNCHER:-}"
RECIPES=()
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) SEEDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --launcher) LAUNCHER="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) RECIPES+=("$1"); shift ;;
  esac
done
if [[ ${#RECIPES[@]} -lt 2 ]]; then
  echo "usage: $0 [--seeds \"0 1 2\"] [--out DIR] RECIPE_A.yaml RECIPE_B.yaml [...] [-- extra flags]" >&2
  exit 2
fi

PY="${PYTHON:-python}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

NAMES=()
for recipe in "${RECIPES[@]}"; do
  name="$(basename "$recipe" .yaml)"
  NAMES+=("$name")
  for seed in $SEEDS; do
    dir="$OUT/$name/seed_$seed"
    echo "=== $name seed $seed -> $dir"
    rm -rf "$dir"
    # shellcheck disable=SC2086  # the launcher may be several words, e.g. "accelerate launch --num_processes 2"
    ${LAUNCHER:-$PY} src/open_r1_ext/grpo.py --config "$recipe" --seed "$seed" --output_dir "$dir" \
      --resume false --save_strategy no "${EXTRA[@]}" 2>&1 | grep -E '^\[(eval|warm start|done)\]|Error' || true
    [[ -f "$dir/results.json" ]] || { echo "run $name seed $seed wrote no results.json" >&2; exit 1; }
  done
done
"$PY" launch/compare.py --out "$OUT" "${NAMES[@]}"
