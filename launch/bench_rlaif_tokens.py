"""Teacher-token benchmark for RLAIF: billed input tokens per scored sample, each saving alone and all together.

    python launch/bench_rlaif_tokens.py [--seeds 0,1,2] [--json out.json]

The workload is fixed (`open_r1_ext.rlaif.workload.benchmark_workload`): 350 samples, 88 coding prompts in
Python/C++/Rust/JavaScript x 4 completions (the last prompt 2), with second-epoch repeats and the junk a small
policy produces. It is fed, 8 prompts (32 samples) per training step, to the real `AnthropicTeacher` and the real
`anthropic` SDK pointed at the loopback fake Messages API (`open_r1_ext.rlaif.fake_server`), which counts tokens
as ceil(chars / 4) per block and bills a `cache_control` prefix above the model's minimum as cache write then
cache read. "Billed-equivalent input" = input + 1.25 x cache write + 0.1 x cache read tokens.

Departures from a real run, said plainly: the fake server's token count is chars/4, not Claude's tokenizer (the
same count is applied to every configuration, so the ratios hold better than the absolute numbers), and its
scores are hash-derived, not a model's judgement (this benchmark measures tokens and reliability, not grading).

A second table injects faults (429 with retry-after, 500, 529, slow replies beyond the timeout, malformed JSON,
unparseable or short score lists, dropped connections) into 30 % of requests and counts lost scores (None, each
counted in teacher/failures) and invented ones (a reward that differs from the fault-free run's).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import common  # first: puts src/ on sys.path, one thread per process

from open_r1_ext.rlaif.fake_server import FakeMessagesServer
from open_r1_ext.rlaif.teacher import AnthropicTeacher, TeacherConfig
from open_r1_ext.rlaif.workload import benchmark_workload


SAVINGS = (
    "teacher_use_cache",
    "teacher_truncate_prompt",
    "teacher_rubric_in_system_prompt",
    "teacher_use_prompt_caching",
    "teacher_use_tiered_scoring",
    "teacher_batch_group_scoring",
)
OFF = dict.fromkeys(SAVINGS, False)
CONFIGS = [
    ("all savings off (seed's 'before')", {}),
    ("SQLite score cache only", {"teacher_use_cache": True}),
    ("prompt truncation (200 chars) only", {"teacher_truncate_prompt": True}),
    ("rubric in system prompt only", {"teacher_rubric_in_system_prompt": True}),
    (
        "rubric in system + cache_control",
        {"teacher_rubric_in_system_prompt": True, "teacher_use_prompt_caching": True},
    ),
    ("heuristic pre-filter (0.3) only", {"teacher_use_tiered_scoring": True}),
    ("group batching only", {"teacher_batch_group_scoring": True}),
    ("all on", dict.fromkeys(SAVINGS, True)),
]
STEP_SLOTS = 8  # prompts per training step (x 4 completions = 32 samples)
KEY = "sk-ant-bench-not-a-real-key"
TOKEN_HEADER = [
    "configuration",
    "billed in/sample",
    "billed in/teacher-scored",
    "saving",
    "calls",
    "teacher-scored",
    "filtered",
    "cache hits",
    "input / cache write / cache read",
    "USD",
]
FAULT_HEADER = [
    "retries",
    "calls",
    "retried",
    "lost (None)",
    "teacher/failures",
    "invented",
    "billed in/sample",
    "seconds",
]


def run(samples, overrides: dict, fault_rate: float = 0.0, max_retries: int = 4, seed: int = 0):
    """Score the workload step by step; return (rewards, teacher summary, server usage totals, seconds)."""
    os.environ["ANTHROPIC_API_KEY"] = KEY
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeMessagesServer(api_key=KEY, fault_rate=fault_rate, seed=seed, slow_s=0.6) as srv,
    ):
        cfg = TeacherConfig(
            **{**OFF, **overrides},
            teacher_base_url=srv.url,
            teacher_cache_path=os.path.join(tmp, "scores.sqlite"),
            teacher_timeout_s=0.25 if fault_rate > 0 else 30.0,  # short only where `slow` faults must time out
            teacher_max_retries=max_retries,
            teacher_backoff_base_s=0.01,
            teacher_backoff_max_s=0.05,
            teacher_seed=seed,
        )
        teacher = AnthropicTeacher(cfg)
        rewards, t0 = [], time.perf_counter()
        slots = sorted({s.slot for s in samples})
        for i in range(0, len(slots), STEP_SLOTS):
            step = set(slots[i : i + STEP_SLOTS])
            batch = [s for s in samples if s.slot in step]
            rewards += teacher.score_sync(
                [s.prompt for s in batch], [s.completion for s in batch], [s.language for s in batch]
            )
        secs = time.perf_counter() - t0
        summary = teacher.stats.summary(cfg)
        usage = srv.usage_totals()
        teacher.close()
    return rewards, summary, usage, secs


def fmt_row(cols, widths):
    return (
        "| "
        + " | ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))
        + " |"
    )


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(fmt_row(header, widths))
    print("|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(fmt_row(r, widths))


def run_configs(samples, seed: int) -> dict:
    """Every configuration of `CONFIGS` on `samples`; the teacher's own accounting is checked against the server's."""
    res = {}
    for name, over in CONFIGS:
        rewards, s, usage, secs = run(samples, over, seed=seed)
        server_billed = (
            usage["input_tokens"]
            + 1.25 * usage["cache_creation_input_tokens"]
            + 0.1 * usage["cache_read_input_tokens"]
        )
        assert abs(server_billed - s["billed_input_tokens"]) < 1e-6, (name, server_billed, s)
        res[name] = {"rewards": rewards, **s, "seconds": secs}
    return res


def token_row(name: str, r: dict, n: int, base: float) -> list:
    teacher_scored = r["api_scored"]
    return [
        name,
        f"{r['billed_input_tokens'] / n:,.0f}",
        f"{r['billed_input_tokens'] / teacher_scored:,.0f}" if teacher_scored else "-",
        f"{100 * (1 - r['billed_input_tokens'] / base):.1f} %",
        int(r["calls"]),
        int(r["api_scored"]),
        int(r["filtered"]),
        int(r["local_cache_hits"]),
        f"{int(r['input_tokens']):,} / {int(r['cache_write_tokens']):,} / {int(r['cache_read_tokens']):,}",
        f"{r['cost_usd']:.3f}",
    ]


def print_token_table(res: dict, n: int, seed: int) -> None:
    print(
        f"\nWorkload: {n} samples, 88 prompts (seed {seed}); fake server counts ceil(chars/4) tokens per block; "
        f"model claude-sonnet-4-5 (cache minimum 1024 tokens).\n"
    )
    base = res[CONFIGS[0][0]]["billed_input_tokens"]
    print_table(TOKEN_HEADER, [token_row(name, res[name], n, base) for name, _ in CONFIGS])


def fault_runs(samples, clean: list, seed: int, results: dict) -> None:
    """The all-on configuration with 30 % of requests faulted, compared with its fault-free rewards `clean`."""
    print(
        "\nInjected faults (30 % of requests: 429+retry-after, 500, 529, slow > timeout, malformed JSON, "
        "unparseable reply, short score list, dropped connection); all savings on:\n"
    )
    rows = []
    for retries in (4, 1):
        rewards, s, _, secs = run(
            samples, dict.fromkeys(SAVINGS, True), fault_rate=0.3, max_retries=retries, seed=seed
        )
        lost = sum(r is None for r in rewards)
        invented = sum(r is not None and c is not None and abs(r - c) > 1e-9 for r, c in zip(rewards, clean))
        invented += sum(r is not None and c is None for r, c in zip(rewards, clean))
        billed = f"{s['billed_input_tokens'] / len(samples):,.0f}"
        rows.append(
            [f"max_retries={retries}", int(s["calls"]), int(s["retries"]), lost, int(s["failures"]), invented]
            + [billed, f"{secs:.1f}"]
        )
        results[f"faults_retries_{retries}"] = {"lost": lost, "invented": invented, **s}
    print_table(FAULT_HEADER, rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0", help="comma-separated workload seeds (the table shows the first)")
    ap.add_argument("--json", default=None, help="also write all numbers to this file")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for seed in seeds:
        samples = benchmark_workload(seed=seed)
        results[seed] = run_configs(samples, seed)
        if seed == seeds[0]:
            print_token_table(results[seed], len(samples), seed)

    seed = seeds[0]
    fault_runs(benchmark_workload(seed=seed), results[seed]["all on"]["rewards"], seed, results)

    if len(seeds) > 1:
        per = [results[sd]["all on"]["billed_input_tokens"] / 350 for sd in seeds]
        off = [results[sd][CONFIGS[0][0]]["billed_input_tokens"] / 350 for sd in seeds]
        print(
            f"\nAcross seeds {seeds} (mean ± sample std): all off {common.fmt_ms(off, ',.0f')}, "
            f"all on {common.fmt_ms(per, ',.0f')} billed input tokens per sample"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
