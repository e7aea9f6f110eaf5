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

Every request asks for the scores through a forced `record_scores` tool call (the tool definition and the tool-use
system prompt the API adds are billed, and cached with the rubric); the fake server bills the tool input as output.

A second table injects faults (429 with retry-after, 500, 529, slow replies beyond the timeout, malformed JSON,
replies without a tool call, with a missing or a duplicate index, dropped connections) into 30 % of requests and
counts lost scores (None, each counted in teacher/failures) and invented ones (a reward that differs from the
fault-free run's), and compares the teacher's billed input with the server's (timed-out and unreadable replies are
billed too). A third check runs the all-on configuration against replies that mix reasoning, code with brackets,
draft arrays and shuffled tool entries, and counts misattributed scores; for contrast, the old free-text parser
(the first bracketed list of the right length) is run on the same replies' text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
    "teacher_batch_across_prompts",
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
    (
        "group batching across prompts",
        {"teacher_batch_group_scoring": True, "teacher_batch_across_prompts": True},
    ),
    ("all on, one call per prompt group", {**dict.fromkeys(SAVINGS, True), "teacher_batch_across_prompts": False}),
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
    "calls",
    "retried",
    "lost (None)",
    "teacher/failures",
    "invented",
    "timed out",
    "billed in/sample (teacher)",
    "billed in/sample (server)",
    "seconds",
]
SLOW_S = 0.6


def server_billed(usage: dict) -> float:
    return usage["input_tokens"] + 1.25 * usage["cache_creation_input_tokens"] + 0.1 * usage["cache_read_input_tokens"]


def run(samples, overrides: dict, fault_rate: float = 0.0, max_retries: int = 4, seed: int = 0, **server_kw):
    """Score the workload step by step; return (rewards, teacher summary, server usage totals, seconds, requests)."""
    os.environ["ANTHROPIC_API_KEY"] = KEY
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeMessagesServer(api_key=KEY, fault_rate=fault_rate, seed=seed, slow_s=SLOW_S, **server_kw) as srv,
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
        if fault_rate > 0:
            time.sleep(SLOW_S + 0.2)  # a slow request the client gave up on is still billed when the server finishes
        summary = teacher.stats.summary(cfg)
        usage = srv.usage_totals()
        teacher.close()
    return rewards, summary, usage, secs, srv.requests


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
        rewards, s, usage, secs, _ = run(samples, over, seed=seed)
        assert abs(server_billed(usage) - s["billed_input_tokens"]) < 1e-6, (name, server_billed(usage), s)
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


FAULT_CONFIGS = ("all on", "all on, one call per prompt group")  # the second makes ~7x more calls to fault


def fault_runs(samples, clean: dict, seed: int, results: dict) -> None:
    """`FAULT_CONFIGS` with 30 % of requests faulted, compared with their fault-free rewards `clean[name]`."""
    print(
        "\nInjected faults (30 % of requests: 429+retry-after, 500, 529, slow > timeout, malformed JSON, "
        "no tool call, missing index, duplicate index, dropped connection):\n"
    )
    rows = []
    configs = dict(CONFIGS)
    for name in FAULT_CONFIGS:
        for retries in (4, 1):
            rewards, s, usage, secs, _ = run(samples, configs[name], fault_rate=0.3, max_retries=retries, seed=seed)
            lost = sum(r is None for r in rewards)
            invented = count_misattributed(rewards, clean[name])
            n = len(samples)
            rows.append(
                [f"{name}, max_retries={retries}", int(s["calls"]), int(s["retries"]), lost, int(s["failures"])]
                + [invented, int(s["timed_out_requests"]), f"{s['billed_input_tokens'] / n:,.1f}"]
                + [f"{server_billed(usage) / n:,.1f}", f"{secs:.1f}"]
            )
            results[f"faults {name} retries={retries}"] = {
                "lost": lost,
                "invented": invented,
                "server_usage": usage,
                **s,
            }
    print_table(["configuration", *FAULT_HEADER], rows)


def count_misattributed(rewards: list, clean: list) -> int:
    """Rewards that differ from the fault-free run's (a None where it had none is lost, not counted here)."""
    wrong = sum(r is not None and c is not None and abs(r - c) > 1e-9 for r, c in zip(rewards, clean))
    return wrong + sum(r is not None and c is None for r, c in zip(rewards, clean))


_OLD_ARRAY_RE = re.compile(r"\[[^\[\]]*\]", re.DOTALL)


def old_parse_scores(text: str, n: int) -> list[float] | None:
    """The free-text parser this replaced: the whole reply as JSON, else the first bracketed list of `n` numbers in
    [0, 1] anywhere in it; None when there is none (the old client retried)."""
    for cand in [text.strip(), *_OLD_ARRAY_RE.findall(text)]:
        try:
            data = json.loads(cand)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("scores"), list):
            data = data["scores"]
        if not isinstance(data, list) or len(data) != n:
            continue
        try:
            vals = [float(v) for v in data]
        except (TypeError, ValueError):
            continue
        if all(not isinstance(v, bool) and not math.isnan(x) and 0 <= x <= 1 for v, x in zip(data, vals)):
            return vals
    return None


def misattribution_check(samples, clean: list, seed: int, results: dict) -> None:
    """All savings on, every reply "chatty": reasoning that quotes `nums[0]` and an example input `[0, 1]`, code with
    brackets, a draft score array, the final array in index order, then the tool call with shuffled entries."""
    rewards, s, _, _, requests = run(samples, dict.fromkeys(SAVINGS, True), seed=seed, reply_style="chatty")
    wrong = count_misattributed(rewards, clean) + sum(r is None for r in rewards)
    graded = [r for r in requests if r["scores"]]
    old_wrong = old_none = 0
    for r in graded:
        old = old_parse_scores(r["reply_text"], len(r["scores"]))
        if old is None:
            old_none += 1
        else:
            old_wrong += sum(abs(a - b) > 1e-9 for a, b in zip(old, r["scores"]))
    n_scores = sum(len(r["scores"]) for r in graded)
    print(
        f"\nMisattribution check ({len(graded)} replies mixing reasoning, code with brackets, draft arrays and "
        f"shuffled tool entries; {n_scores} candidate scores): tool-use reader {wrong} misattributed "
        f"(of {len(samples)} rewards, {int(s['malformed_replies'])} malformed); the old free-text parser on the "
        f"same replies' text: {old_wrong} misattributed scores, {old_none} replies unreadable."
    )
    results["misattribution"] = {"tool_use": wrong, "old_parser": old_wrong, "old_unreadable": old_none}


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
    clean = {name: results[seed][name]["rewards"] for name in FAULT_CONFIGS}
    fault_runs(benchmark_workload(seed=seed), clean, seed, results)
    misattribution_check(benchmark_workload(seed=seed), results[seed]["all on"]["rewards"], seed, results)

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
