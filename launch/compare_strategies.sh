#!/usr/bin/env bash
# Compare recipes under the benchmark protocol (paired seeds, 95 % intervals, an A/A arm); see launch/compare.py.
#
#   launch/compare_strategies.sh [--seeds "0 1 2 3 4"] [--jobs 2] [--out runs/compare/x] [--no-aa] \
#       [--launcher "torchrun --standalone --nproc_per_node 2"] BASELINE.yaml OTHER.yaml [...] [-- --max_steps 300 ...]
#   launch/compare_strategies.sh --spec launch/benchmarks/grpo_aa.yaml [--jobs 2]
#
# The first recipe is the baseline; the A/A arm (the baseline again with another sampling seed) is added unless
# --no-aa. Flags after `--` go to every run (CLI flags override recipe values). Finished runs are reused, so an
# interrupted comparison resumes. The table is printed and written to <out>/compare.md, with <out>/compare.png.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS="0 1 2 3 4"
JOBS=1
OUT=""
LAUNCHER=""
SPEC=""
AA="--aa"
RECIPES=()
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) SEEDS="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --launcher) LAUNCHER="$2"; shift 2 ;;
    --spec) SPEC="$2"; shift 2 ;;
    --no-aa) AA=""; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) RECIPES+=("$1"); shift ;;
  esac
done

PY="${PYTHON:-python}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
export OMP_NUM_THREADS=1

ARGS=(--seeds $SEEDS --jobs "$JOBS")
[[ -n "$OUT" ]] && ARGS+=(--out "$OUT")
[[ -n "$LAUNCHER" ]] && ARGS+=(--launcher "$LAUNCHER")
if [[ -n "$SPEC" ]]; then
  exec "$PY" launch/compare.py --spec "$SPEC" "${ARGS[@]}" ${EXTRA[@]+-- "${EXTRA[@]}"}
fi
if [[ ${#RECIPES[@]} -lt 1 ]]; then
  echo "usage: $0 [--seeds \"0 1 2 3 4\"] [--jobs N] BASELINE.yaml [OTHER.yaml ...] [-- extra flags]" >&2
  exit 2
fi
exec "$PY" launch/compare.py --recipes "${RECIPES[@]}" $AA "${ARGS[@]}" ${EXTRA[@]+-- "${EXTRA[@]}"}
