"""Tabulate and plot runs written by launch/compare_strategies.sh (or by hand, one results.json per seed).

    python launch/compare.py --out runs/compare baseline_name other_name [...]

Prints mean ± std over seeds of the held-out accuracy before and after training, the mean reward over the last 10
logged steps, generated tokens and wall time, with ratios to the first name; writes <out>/compare.png with reward
against step and against generated tokens, and <out>/compare.json with the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def load(out: Path, name: str) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted((out / name).glob("seed_*/results.json"))]
    if not runs:
        raise SystemExit(f"no results under {out / name}/seed_*/results.json")
    return runs


def summarise(runs: list[dict]) -> dict:
    def last_reward(r):
        tail = [c["reward"] for c in r["curve"][-10:]]
        return statistics.fmean(tail) if tail else None

    return {
        "seeds": len(runs),
        "acc_before": mean_std([r.get("accuracy_before") for r in runs]),
        "acc_after": mean_std([r.get("accuracy_after") for r in runs]),
        "reward_last10": mean_std([last_reward(r) for r in runs]),
        "generated_tokens": mean_std([r["generated_tokens"] for r in runs]),
        "train_seconds": mean_std([r["train_seconds"] for r in runs]),
    }


def fmt(ms: tuple[float, float], digits: int = 3) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    out = Path(args.out)
    runs = {n: load(out, n) for n in args.names}
    table = {n: summarise(r) for n, r in runs.items()}
    base = table[args.names[0]]

    header = (
        "| run | seeds | acc before | acc after | reward (last 10 steps) | generated tokens | train s "
        "| acc ratio | tokens ratio | time ratio |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")

    def ratio(s: dict, k: str) -> float:
        return s[k][0] / base[k][0] if base[k][0] else float("nan")

    for n, s in table.items():
        print(
            f"| {n} | {s['seeds']} | {fmt(s['acc_before'])} | {fmt(s['acc_after'])} | {fmt(s['reward_last10'])} "
            f"| {fmt(s['generated_tokens'], 0)} | {fmt(s['train_seconds'], 1)} | {ratio(s, 'acc_after'):.2f} "
            f"| {ratio(s, 'generated_tokens'):.2f} | {ratio(s, 'train_seconds'):.2f} |"
        )
    (out / "compare.json").write_text(json.dumps(table, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (n, rs) in enumerate(runs.items()):
        color = f"C{i}"
        for j, r in enumerate(rs):
            label = n if j == 0 else None
            axes[0].plot(
                [c["step"] for c in r["curve"]], [c["reward"] for c in r["curve"]], color=color, alpha=0.6, label=label
            )
            axes[1].plot(
                [c["generated_tokens"] for c in r["curve"]],
                [c["reward"] for c in r["curve"]],
                color=color,
                alpha=0.6,
                label=label,
            )
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("generated tokens")
    for ax in axes:
        ax.set_ylabel("mean reward")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("reward per step and per generated token (one line per seed)")
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    print(f"plot: {out / 'compare.png'}; table: {out / 'compare.json'}")


if __name__ == "__main__":
    main()
