"""Evaluate trained token-compression runs (one per seed) against the baselines at the same ratio.

    python launch/compression_evaluate.py --config recipes/compression_eval.yaml [--eval_run_dirs DIR ...]

Evaluates the runs in `eval_run_dirs` (default `output_dir`) on `eval_split` (held-out plays): the policy and the
random / frequency / surprisal baselines at `eval_ratio` (default `target_ratio`), with ratio, accuracy, recovery and
semantic similarity per method (mean ± std over runs), paired tests of the policy against each baseline, and the
forward-pass speed-up (`open_r1_ext.compression.evaluation.run_evaluation`). Writes `eval_results.json` and `eval.md`
into `output_dir`.
"""

from __future__ import annotations

import common  # noqa: F401  (first: puts src/ on sys.path, one thread per process)
from compression_prepare import parse

from open_r1_ext.compression.evaluation import run_evaluation


def main(argv: list[str] | None = None) -> dict:
    _, args, _ = parse(argv)
    return run_evaluation(args)


if __name__ == "__main__":
    main()
