#!/usr/bin/env bash
# Train token-adaptive GRPO from a recipe (default: the built-in CPU recipe); flags after the recipe override it.
#
#   launch/train_adaptive_grpo.sh                                   # recipes/token_adaptive_builtin.yaml, CPU
#   launch/train_adaptive_grpo.sh recipes/token_adaptive_qwen2.5-1.5b_math.yaml --max_steps 200
#   ACCELERATE_CONFIG=launch/accelerate_configs/zero3.yaml launch/train_adaptive_grpo.sh RECIPE.yaml
#
# A recipe with `use_vllm: true` (a GPU recipe) goes through `accelerate launch` with ACCELERATE_CONFIG (default
# launch/accelerate_configs/zero2.yaml); any other runs in one Python process unless ACCELERATE_CONFIG is set.
# Compare with the baseline: launch/compare_strategies.sh --jobs 2 recipes/testbed_scratch.yaml RECIPE.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE="recipes/token_adaptive_builtin.yaml"
if [[ $# -gt 0 && "$1" != --* ]]; then
  RECIPE="$1"
  shift
fi
[[ -f "$RECIPE" ]] || { echo "no such recipe: $RECIPE" >&2; exit 2; }

PY="${PYTHON:-python}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

ACCEL="${ACCELERATE_CONFIG:-}"
if [[ -z "$ACCEL" ]] && grep -Eq '^use_vllm:[[:space:]]*true' "$RECIPE"; then
  ACCEL="launch/accelerate_configs/zero2.yaml"
fi

if [[ -n "$ACCEL" ]]; then
  exec "$PY" -m accelerate.commands.launch --config_file "$ACCEL" src/open_r1_ext/grpo.py --config "$RECIPE" "$@"
else
  exec "$PY" src/open_r1_ext/grpo.py --config "$RECIPE" "$@"
fi
