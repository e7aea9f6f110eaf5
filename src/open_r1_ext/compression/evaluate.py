"""`python -m open_r1_ext.compression.evaluate --config recipes/compression_eval.yaml [--flag value ...]`

Evaluates the trained runs in `eval_run_dirs` (one per seed; default `output_dir`) on `eval_split` (held-out plays):
the policy and the random / frequency / surprisal baselines at the same ratio (`eval_ratio`, default
`target_ratio`), with ratio, accuracy, recovery and semantic similarity per method (mean ± std over runs), paired
tests of the policy against each baseline, and the forward-pass speed-up. Writes `eval_results.json` and `eval.md`
into `output_dir`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_evaluation(args, run_dirs: list[str] | None = None, log=print) -> dict:
    import torch

    from open_r1_ext.compression.data import load_split, load_tokenizer
    from open_r1_ext.compression.evaluation import (
        SimilarityScorer,
        evaluate_model,
        markdown_table,
        measure_speedup,
        summarize,
    )
    from open_r1_ext.compression.models import CompressionModel, num_to_mask

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    run_dirs = run_dirs or args.eval_run_dirs or [args.output_dir]
    ratio = args.target_ratio if args.eval_ratio is None else args.eval_ratio
    tokenizer = load_tokenizer(args.data_dir)
    data = load_split(args.data_dir, args.eval_split)
    if args.eval_num_sequences:
        data = data[: args.eval_num_sequences]
    scorer = SimilarityScorer(args.similarity_model)
    if scorer.note:
        log(f"[evaluate] similarity fallback: {scorer.note}")
    methods = ["policy", "random", "frequency", "surprisal"]
    if args.ratio_control == "lambda":
        methods.append("policy_native")
    runs, model = [], None
    for i, run_dir in enumerate(run_dirs):
        model = CompressionModel.from_folder(run_dir)
        runs.append(evaluate_model(model, data, tokenizer, ratio, methods=methods, scorer=scorer, seed=args.seed + i))
        log(f"[evaluate] {run_dir}: done ({len(data)} sequences)")
    summary = summarize(runs)
    n = data.shape[1]
    speed = measure_speedup(
        n,
        n - num_to_mask(n, ratio),
        n_layer=args.speed_n_layer,
        n_embd=args.speed_n_embd,
        batch_size=args.speed_batch_size,
        repeats=args.speed_repeats,
        vocab_size=len(tokenizer),
        policy=model.policy if model is not None else None,
    )
    speed.update(seq_len=n, batch_size=args.speed_batch_size, n_layer=args.speed_n_layer, n_embd=args.speed_n_embd)
    result = {
        "ratio_requested": ratio,
        "split": args.eval_split,
        "num_sequences": int(len(data)),
        "run_dirs": list(run_dirs),
        "similarity_model": scorer.name,
        "similarity_note": scorer.note,
        "summary": summary,
        "speed": speed,
        "per_sequence": runs,
    }
    table = markdown_table(summary, speed, scorer.name)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_results.json").write_text(json.dumps(result, indent=1))
    (out / "eval.md").write_text(table + "\n")
    log(table)
    return result


def main(argv: list[str] | None = None) -> dict:
    from open_r1_ext.compression.prepare import parse

    _, args, _ = parse(list(sys.argv[1:] if argv is None else argv))
    return run_evaluation(args)


if __name__ == "__main__":
    main()
