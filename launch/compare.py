"""The comparison protocol: run arms over paired seeds, then print paired differences with 95 % intervals.

    python launch/compare.py --spec launch/benchmarks/grpo_aa_addition.yaml [--jobs 2] [--seeds 0 1 2 3 4]
    python launch/compare.py --recipes recipes/testbed_addition.yaml recipes/x.yaml [--aa] [--jobs 2] [-- --max_steps 300]
    python launch/compare.py --spec ... --tabulate        # only read finished runs and print the table

An arm is a recipe plus flags; the first arm is the baseline. Every arm runs once per seed through
`src/open_r1_ext/grpo.py` with `--seed s`: the same seed gives every arm the same data order (TRL's sampler is
seeded by it), the same warm start (built-in models are cached by their settings) and the same random numbers for
held-out evaluation. The A/A arm (`aa: true` or `--aa`) is the baseline again with `--sampling_seed s + 1000`: same
data, other sampling, so its interval shows the noise of the design and must cover 0.

For every arm, paired by seed with the baseline, the table gives: final held-out pass@1 (sampled at T=1; the mean of
the last 3 evaluations, `core.protocol.FINAL_WINDOW`) and its difference to the baseline with a 95 % Student-t
interval and a verdict ("no difference" when the interval covers 0); the difference at equal generated tokens (the
last 3 evaluations of whichever run sampled fewer tokens against the other's curve at those token counts), with its
verdict; the same for greedy accuracy; tokens-to-threshold (generated tokens until held-out pass@1 first reaches the
baseline's final accuracy minus 2 points, as a ratio to the baseline's own, median over seeds, with how many seeds
reached it); the area under accuracy-vs-generated-tokens over the baseline's token budget (a mean accuracy, paired
difference with interval); generated tokens; training seconds (evaluation excluded) and s/step, with the paired
time ratio. Runs already finished under `--out` are reused (delete a run's folder or pass `--force` to redo it), so
an interrupted benchmark resumes where it stopped. `--jobs N` runs N runs side by side, one torch thread each.

Writes `<out>/compare.json` (the table) and `<out>/compare.png` (held-out pass@1 against steps, generated tokens
and training seconds; mean over seeds, one thin line per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from open_r1_ext.core.protocol import ArmSummary, summarise  # noqa: E402


AA_SEED_OFFSET = 1000


@dataclass
class Arm:
    name: str
    recipe: str
    flags: dict = field(default_factory=dict)
    sampling_seed_offset: int | None = None  # the A/A arm: same data order, other sampling stream

    def command(self, python: str, seed: int, out: Path, common: dict, extra: list[str], launcher: str) -> list[str]:
        cmd = shlex.split(launcher) if launcher else [python]
        cmd += [str(ROOT / "src/open_r1_ext/grpo.py"), "--config", str(ROOT / self.recipe)]
        flags = {**common, **self.flags, "seed": seed, "output_dir": str(out), "resume": False}
        flags.setdefault("save_strategy", "no")
        if self.sampling_seed_offset is not None:
            flags["sampling_seed"] = seed + self.sampling_seed_offset
        for k, v in flags.items():
            cmd += [f"--{k}", *(map(_flag_value, v) if isinstance(v, (list, tuple)) else [_flag_value(v)])]
        return cmd + list(extra)


def _flag_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def load_spec(path: str) -> dict:
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    known = {"recipe", "seeds", "flags", "baseline", "aa", "arms", "description", "jobs", "out"}
    unknown = set(spec) - known
    if unknown:
        raise SystemExit(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if not spec.get("arms"):
        raise SystemExit(f"{path}: `arms` is empty")
    return spec


def arms_from_spec(spec: dict) -> list[Arm]:
    arms = []
    for name, body in spec["arms"].items():
        body = dict(body or {})
        recipe = body.pop("recipe", spec.get("recipe"))
        if recipe is None:
            raise SystemExit(f"arm {name!r} has no recipe (set `recipe:` at the top or in the arm)")
        arms.append(Arm(name, recipe, body))
    baseline = spec.get("baseline", arms[0].name)
    arms.sort(key=lambda a: a.name != baseline)  # the baseline first
    if arms[0].name != baseline:
        raise SystemExit(f"baseline {baseline!r} is not an arm: {[a.name for a in arms]}")
    if spec.get("aa", True):
        b = arms[0]
        arms.insert(1, Arm(f"{b.name} (A/A)", b.recipe, dict(b.flags), sampling_seed_offset=AA_SEED_OFFSET))
    return arms


def arms_from_recipes(recipes: list[str], aa: bool) -> list[Arm]:
    arms = [Arm(Path(r).stem, r) for r in recipes]
    if aa:
        arms.insert(1, Arm(f"{arms[0].name} (A/A)", recipes[0], sampling_seed_offset=AA_SEED_OFFSET))
    return arms


def _dir(out: Path, arm: Arm, seed: int) -> Path:
    return out / arm.name.replace(" ", "_").replace("/", "-").replace("(", "").replace(")", "") / f"seed_{seed}"


def run_all(arms, seeds, out, common, extra, jobs, launcher, force) -> None:
    python = os.environ.get("PYTHON") or (
        str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
    )
    todo = []
    for seed in seeds:  # seed-major order: an interrupted benchmark has complete pairs for the first seeds
        for arm in arms:
            d = _dir(out, arm, seed)
            cmd = arm.command(python, seed, d, common, extra, launcher)
            if not force and (d / "results.json").exists() and _same_command(d, cmd):
                continue  # a finished run of exactly this command (another spec's shared baseline, say)
            todo.append((arm, seed, d))
    print(f"[compare] {len(todo)} runs to do ({len(arms)} arms x {len(seeds)} seeds, --jobs {jobs})", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}

    def one(job):
        arm, seed, d = job
        if d.exists():
            for p in d.iterdir():  # a half-finished run is redone from scratch
                if p.is_file():
                    p.unlink()
        d.mkdir(parents=True, exist_ok=True)
        cmd = arm.command(python, seed, d, common, extra, launcher)
        t0 = time.perf_counter()
        (d / "command.json").write_text(json.dumps(cmd[1:]))
        with open(d / "log.txt", "w") as log:
            log.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
            log.flush()
            rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        took = time.perf_counter() - t0
        status = "ok" if rc == 0 and (d / "results.json").exists() else f"FAILED (exit {rc}; see {d / 'log.txt'})"
        print(f"[compare] {arm.name} seed {seed}: {status} in {took:.0f} s", flush=True)
        return rc == 0

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        ok = list(pool.map(one, todo))
    if not all(ok):
        raise SystemExit(f"{ok.count(False)} run(s) failed")


def _same_command(d: Path, cmd: list[str]) -> bool:
    """Whether the run in `d` was made by `cmd` (the interpreter aside), so its results can be reused."""
    p = d / "command.json"
    return p.exists() and json.loads(p.read_text()) == cmd[1:]


def load_runs(arms, seeds, out) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for arm in arms:
        runs[arm.name] = {}
        for seed in seeds:
            p = _dir(out, arm, seed) / "results.json"
            if p.exists():
                runs[arm.name][seed] = json.loads(p.read_text())
    return runs


def _ms(ms, digits=3):
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def table(summaries: list[ArmSummary]) -> str:
    base = summaries[0]
    lines = [
        "| arm | seeds | acc before | acc final | Δ final vs baseline [95 % CI] | verdict (equal steps) "
        "| Δ at equal generated tokens [95 % CI] | verdict (equal tokens) | greedy final | Δ greedy [95 % CI] "
        "| tokens to threshold (× baseline, median) | Δ AUC acc-vs-tokens [95 % CI] | generated tokens | train s "
        "| s/step | time × baseline [95 % CI] |",
        "|---" * 16 + "|",
    ]
    for s in summaries:
        is_base = s is base
        verdict = "baseline" if is_base else s.delta_final.verdict
        verdict_tok = "baseline" if is_base else s.delta_equal_tokens.verdict
        if s.name.endswith("(A/A)"):
            ok = s.delta_final.verdict == "no difference"
            verdict = "A/A: covers 0 ✓" if ok else f"A/A: {s.delta_final.verdict} ✗ (noise check failed)"
        med = s.tokens_ratio_median
        tok = (
            "1.00"
            if is_base
            else (f"{med:.2f}" if med is not None else "—") + f" ({s.reached}/{len(s.seeds)} reached)"
        )
        tr = s.time_ratio
        time_col = "1.00" if is_base else f"{1 + tr.mean:.2f} [{1 + tr.low:.2f}, {1 + tr.high:.2f}]"
        lines.append(
            f"| {s.name} | {len(s.seeds)} | {_ms(s.acc_before)} | {_ms(s.acc_final)} "
            f"| {'—' if is_base else s.delta_final.format()} | {verdict} "
            f"| {'—' if is_base else s.delta_equal_tokens.format()} | {verdict_tok} | {_ms(s.greedy_final)} "
            f"| {'—' if is_base else s.delta_greedy.format()} | {tok} | {'—' if is_base else s.delta_auc.format()} "
            f"| {_ms(s.generated_tokens, 0)} | {_ms(s.train_seconds, 1)} | {_ms(s.seconds_per_step, 3)} | {time_col} |"
        )
    return "\n".join(lines)


def plot(runs: dict[str, dict[int, dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharey=True)
    for i, (name, by_seed) in enumerate(runs.items()):
        color = f"C{i}"
        for ax, key in zip(axes, ("step", "generated_tokens", "seconds")):
            curves = [[(p[key], p["pass@1"]) for p in r.get("eval_curve", [])] for r in by_seed.values()]
            curves = [c for c in curves if c]
            for c in curves:
                ax.plot(*zip(*c), color=color, alpha=0.2, linewidth=0.8)
            if curves:  # mean over seeds on the x-grid of the longest curve
                grid = np.array([x for x, _ in max(curves, key=len)])
                ys = np.array([np.interp(grid, [x for x, _ in c], [y for _, y in c]) for c in curves])
                ax.plot(grid, ys.mean(0), color=color, linewidth=2, label=name if key == "step" else None)
    for ax, label in zip(axes, ("step", "generated tokens", "training seconds (evaluation excluded)")):
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out pass@1 (T=1)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec", help="a benchmark spec (YAML: recipe, seeds, flags, baseline, aa, arms)")
    src.add_argument("--recipes", nargs="+", help="recipes, one arm each; the first is the baseline")
    ap.add_argument("--aa", action="store_true", help="with --recipes: add the A/A arm")
    ap.add_argument("--seeds", type=int, nargs="+", help="paired seeds (default: the spec's, else 0 1 2 3 4)")
    ap.add_argument("--jobs", type=int, help="runs side by side, one torch thread each (default: the spec's, else 1)")
    ap.add_argument("--out", help="output folder (default: runs/compare/<spec name>)")
    ap.add_argument("--launcher", default="", help='e.g. "torchrun --standalone --nproc_per_node 2"')
    ap.add_argument("--tabulate", action="store_true", help="only tabulate finished runs")
    ap.add_argument("--force", action="store_true", help="redo runs that already have results.json")
    args = ap.parse_args(argv)

    if args.spec:
        spec = load_spec(args.spec)
        arms = arms_from_spec(spec)
        name = Path(args.spec).stem
        common = dict(spec.get("flags") or {})
        seeds = args.seeds or spec.get("seeds") or [0, 1, 2, 3, 4]
        jobs = args.jobs or spec.get("jobs", 1)
        title = spec.get("description", name).strip().splitlines()[0]
    else:
        arms = arms_from_recipes(args.recipes, args.aa)
        name, common, seeds, jobs = "recipes", {}, args.seeds or [0, 1, 2, 3, 4], args.jobs or 1
        title = " vs ".join(a.name for a in arms)
    out = ROOT / (args.out or (spec.get("out") if args.spec else None) or f"runs/compare/{name}")
    out.mkdir(parents=True, exist_ok=True)
    if not args.tabulate:
        run_all(arms, seeds, out, common, extra, jobs, args.launcher, args.force)
    runs = load_runs(arms, seeds, out)
    base = arms[0].name
    if not runs[base]:
        raise SystemExit(f"no finished baseline runs under {out}")
    summaries = summarise(runs, base)
    text = table(summaries)
    print(text)
    (out / "compare.md").write_text(text + "\n")
    (out / "compare.json").write_text(
        json.dumps(
            {
                "seeds": seeds,
                "arms": {a.name: {"recipe": a.recipe, "flags": a.flags} for a in arms},
                "summaries": [_jsonable(s) for s in summaries],
            },
            indent=2,
        )
    )
    plot(runs, out / "compare.png", title)
    print(f"[compare] table: {out / 'compare.md'}; plot: {out / 'compare.png'}")


def _jsonable(s: ArmSummary) -> dict:
    from dataclasses import asdict

    d = asdict(s)
    for k in ("delta_final", "delta_greedy", "delta_auc", "delta_equal_tokens", "time_ratio"):
        d[k]["verdict"] = getattr(s, k).verdict
    return json.loads(
        json.dumps(d, default=str).replace("NaN", "null").replace("-Infinity", "null").replace("Infinity", "null")
    )


if __name__ == "__main__":
    main()
