"""Evaluate trained token-compression runs (seeds, λ values) against the baselines at the policy's measured ratio.

    python launch/compression_evaluate.py --config recipes/compression_eval.yaml [--eval_run_dirs DIR ...]

Evaluates the runs in `eval_run_dirs` (default `output_dir`) on `eval_split` (held-out plays), grouped by objective
(one rate-distortion point per λ): the policy's own masks (ratio measured) and the random / frequency / surprisal /
constant baselines removing as many tokens from each sequence; recovery of removed tokens and semantic similarity
(primary, paired bootstrap intervals), accuracy including kept tokens (secondary), the speed-up on the compressed
sequences with the policy's cost (`open_r1_ext.compression.evaluation.run_evaluation`). Writes `eval_results.json`,
`eval.md` and `rate_distortion.png` into `output_dir`.
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
