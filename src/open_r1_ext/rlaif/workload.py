"""Deterministic coding prompts and student completions, for the token benchmark and the CPU recipe's dataset.

22 small list-processing tasks x 4 languages (Python, C++, Rust, JavaScript) = 88 prompts. `benchmark_workload()`
lays out what a real RLAIF run sends to its teacher: 88 prompt slots (the last with 2 completions, 350 samples in
all) in which some prompts come back a second epoch with partly identical completions, and whose groups mix good
solutions, variants, syntax errors, truncations at the completion-length limit, chat instead of code, empty
answers, repeated tokens and duplicates (a collapsing policy). Everything comes from `random.Random(seed)`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


LANG_NAMES = {"python": "Python", "cpp": "C++", "rust": "Rust", "javascript": "JavaScript"}
FENCE = {"python": "python", "cpp": "cpp", "rust": "rust", "javascript": "javascript"}


@dataclass(frozen=True)
class Op:
    """A fold over a list: `result = init; for v in values: if cond: result = update`."""

    name: str
    desc: str  # "returns ..." clause
    init: int
    cond: str  # C-style (`&&`, `==`, `!=`, `true`); spelled per language by `_cond`
    update: str  # may use {max} / {min} / {abs}, spelled per language by `_update`

    def py(self, values: list[int]) -> int:
        """The reference answer (the Python spelling of the fold), for the prompt's examples."""
        result = self.init
        cond, update = _cond(self.cond, "python"), _update(self.update, "python")
        for v in values:
            if eval(cond, {}, {"v": v}):  # our own fixed expressions, never user input
                result = eval(update, {"max": max, "min": min, "abs": abs}, {"v": v, "result": result})
        return result


# fmt: off
OPS = [Op(*row) for row in [
    ("sum_even", "the sum of the even numbers", 0, "v % 2 == 0", "result + v"),
    ("sum_odd", "the sum of the odd numbers", 0, "v % 2 != 0", "result + v"),
    ("count_positive", "how many numbers are strictly positive", 0, "v > 0", "result + 1"),
    ("count_negative", "how many numbers are negative", 0, "v < 0", "result + 1"),
    ("product_nonzero", "the product of the non-zero numbers (1 for none)", 1, "v != 0", "result * v"),
    ("sum_squares", "the sum of the squares of all numbers", 0, "true", "result + v * v"),
    ("max_non_negative", "the largest number, or 0 when every number is negative", 0, "true", "{max}"),
    ("min_capped", "the smallest number, or 1000 when every number exceeds 1000", 1000, "true", "{min}"),
    ("sum_multiples_of_three", "the sum of the multiples of three", 0, "v % 3 == 0", "result + v"),
    ("count_above_ten", "how many numbers are greater than ten", 0, "v > 10", "result + 1"),
    ("sum_abs", "the sum of the absolute values", 0, "true", "result + {abs}"),
    ("count_zeros", "how many numbers are zero", 0, "v == 0", "result + 1"),
    ("sum_below_hundred", "the sum of the numbers below one hundred", 0, "v < 100", "result + v"),
    ("sum_cubes", "the sum of the cubes of all numbers", 0, "true", "result + v * v * v"),
    ("count_even", "how many numbers are even", 0, "v % 2 == 0", "result + 1"),
    ("sum_in_range", "the sum of the numbers between 10 and 20 inclusive", 0, "v >= 10 && v <= 20", "result + v"),
    ("max_even", "the largest even number, or 0 when there is none above 0", 0, "v % 2 == 0", "{max}"),
    ("count_multiples_of_five", "how many numbers are multiples of five", 0, "v % 5 == 0", "result + 1"),
    ("sum_doubled", "twice the sum of all numbers", 0, "true", "result + 2 * v"),
    ("sum_negative", "the sum of the negative numbers", 0, "v < 0", "result + v"),
    ("product_small", "the product of the numbers from 1 to 9 (1 for none)", 1, "v > 0 && v < 10", "result * v"),
    ("count_odd", "how many numbers are odd", 0, "v % 2 != 0", "result + 1"),
]]
# fmt: on


def _cond(cond: str, lang: str) -> str:
    if lang == "python":
        return cond.replace("&&", "and").replace("true", "True")
    if lang == "javascript":
        return cond.replace("!=", "!==").replace("==", "===").replace("!===", "!==")
    return cond


def _update(update: str, lang: str, acc: str = "result", var: str = "v") -> str:
    spell = {
        "python": {"max": f"max({acc}, {var})", "min": f"min({acc}, {var})", "abs": f"abs({var})"},
        "cpp": {"max": f"std::max({acc}, {var})", "min": f"std::min({acc}, {var})", "abs": f"std::llabs({var})"},
        "rust": {"max": f"{acc}.max({var})", "min": f"{acc}.min({var})", "abs": f"{var}.abs()"},
        "javascript": {"max": f"Math.max({acc}, {var})", "min": f"Math.min({acc}, {var})", "abs": f"Math.abs({var})"},
    }[lang]
    return update.format(**spell)


def solution(op: Op, lang: str, acc: str = "result", var: str = "v", docs: bool = True) -> str:
    """A correct solution of `op` in `lang` (accumulator and loop variable names, doc comment on or off)."""
    cond = re.sub(r"\bv\b", var, _cond(op.cond, lang))
    upd = _update(re.sub(r"\bv\b", var, op.update.replace("result", acc)), lang, acc, var)
    always = op.cond == "true"
    if lang == "python":
        doc = f'    """Return {op.desc} in `values`.\n\n    Args:\n        values: a list of integers.\n    """\n'
        body = f"        {acc} = {upd}\n" if always else f"        if {cond}:\n            {acc} = {upd}\n"
        return f"def {op.name}(values):\n{doc if docs else ''}    {acc} = {op.init}\n    for {var} in values:\n{body}    return {acc}\n"
    if lang == "cpp":
        doc = f"// Returns {op.desc} in `values`.\n"
        inner = (
            f"        {acc} = {upd};\n"
            if always
            else f"        if ({cond}) {{\n            {acc} = {upd};\n        }}\n"
        )
        return (
            f"#include <algorithm>\n#include <cstdlib>\n#include <vector>\n\n{doc if docs else ''}"
            f"long long {op.name}(const std::vector<long long>& values) {{\n    long long {acc} = {op.init};\n"
            f"    for (long long {var} : values) {{\n{inner}    }}\n    return {acc};\n}}\n"
        )
    if lang == "rust":
        doc = f"/// Returns {op.desc} in `values`.\n"
        inner = (
            f"        {acc} = {upd};\n"
            if always
            else f"        if {cond} {{\n            {acc} = {upd};\n        }}\n"
        )
        return (
            f"{doc if docs else ''}pub fn {op.name}(values: &[i64]) -> i64 {{\n    let mut {acc}: i64 = {op.init};\n"
            f"    for &{var} in values {{\n{inner}    }}\n    {acc}\n}}\n"
        )
    doc = f"/**\n * Returns {op.desc} in `values`.\n * @param {{number[]}} values\n * @returns {{number}}\n */\n"
    inner = f"    {acc} = {upd};\n" if always else f"    if ({cond}) {{\n      {acc} = {upd};\n    }}\n"
    return (
        f"{doc if docs else ''}function {op.name}(values) {{\n  let {acc} = {op.init};\n"
        f"  for (const {var} of values) {{\n{inner}  }}\n  return {acc};\n}}\n\nmodule.exports = {{ {op.name} }};\n"
    )


def prompt_for(op: Op, lang: str) -> str:
    """A realistic task prompt (~800 characters): statement first, then requirements, examples and format."""
    examples = [[1, 2, 3, 4, 5, 6], [], [-7, 0, 12, 15, 20, 33], [100, -3, 9]]
    ex = "\n".join(f"    {op.name}({e}) -> {op.py(e)}" for e in examples)
    name = LANG_NAMES[lang]
    sig = {
        "python": f"def {op.name}(values: list[int]) -> int",
        "cpp": f"long long {op.name}(const std::vector<long long>& values)",
        "rust": f"pub fn {op.name}(values: &[i64]) -> i64",
        "javascript": f"function {op.name}(values)",
    }[lang]
    return (
        f"Write a {name} function `{op.name}` that returns {op.desc} in a list of integers.\n\n"
        f"Signature:\n    {sig}\n\n"
        "Requirements:\n"
        f"- Return {op.init} for an empty list.\n"
        "- Do not modify the input; do not read from standard input or print anything.\n"
        "- Use only the standard library of the language.\n"
        "- Run in linear time and constant extra memory.\n"
        "- Document the function (docstring or doc comment) with its parameters and return value.\n"
        "- Keep the code idiomatic and readable; meaningful names, no dead code.\n\n"
        f"Examples:\n{ex}\n\n"
        f"Answer with the complete {name} code in a single fenced code block and no explanation."
    )


def short_prompt_for(op: Op, lang: str) -> str:
    """A one-line prompt ending in an opened code fence (fits the tiny CPU model's 256-token context)."""
    return f"Write a {LANG_NAMES[lang]} function `{op.name}` that returns {op.desc} in a list.\n```{FENCE[lang]}\n"


def coding_prompts(short: bool = False) -> list[dict[str, str]]:
    """All 88 prompts as rows `{prompt, language, task}`."""
    make = short_prompt_for if short else prompt_for
    return [{"prompt": make(op, lang), "language": lang, "task": op.name} for op in OPS for lang in LANG_NAMES]


# -- student completions ----------------------------------------------------------------------------------------

_PROSE = (
    "Sure! To solve this you can loop over the list, check each number against the condition and keep a running "
    "total. Let me know if you would like me to write out the full code for you.",
    "I'm not able to run code, but the idea is simple: iterate, filter, accumulate, and return the result at the end.",
    "The answer is 42 because the numbers add up that way in the first example.",
)


def _fenced(code: str, lang: str) -> str:
    return f"```{FENCE[lang]}\n{code}```"


def completion(kind: str, op: Op, lang: str, rng: random.Random) -> str:
    good = solution(op, lang)
    if kind == "good":
        return _fenced(good, lang)
    if kind == "variant":
        acc, var = rng.choice([("total", "x"), ("acc", "n"), ("out", "item")])
        return _fenced(solution(op, lang, acc=acc, var=var, docs=rng.random() < 0.5), lang)
    if kind == "syntax_error":
        if lang == "python":
            broken = good.replace("):\n", ")\n", 1)  # drop the colon of the def
        else:
            cut = good.rfind("}")
            broken = good[:cut] + good[cut + 1 :]  # drop the closing brace
        return _fenced(broken, lang)
    if kind == "truncated":  # hit max_completion_length mid-function: no closing fence
        return f"```{FENCE[lang]}\n" + good[: int(len(good) * rng.uniform(0.35, 0.7))]
    if kind == "prose":
        return rng.choice(_PROSE)
    if kind == "empty":
        return rng.choice(["", "\n", "```\n```"])
    if kind == "repeated":
        word = rng.choice(["result", "return", "values", "{"])
        return " ".join([word] * rng.randint(12, 40))
    raise ValueError(f"unknown completion kind {kind!r}")


KIND_WEIGHTS = {
    "good": 0.34,
    "variant": 0.22,
    "syntax_error": 0.1,
    "truncated": 0.1,
    "prose": 0.06,
    "empty": 0.03,
    "repeated": 0.05,
    "duplicate": 0.1,
}


@dataclass
class Sample:
    prompt: str
    completion: str
    language: str
    kind: str
    slot: int  # prompt slot 0..87 (a training "prompt" position)


def benchmark_workload(
    num_slots: int = 88, group_size: int = 4, total: int = 350, repeat_slots: int = 18, seed: int = 0
) -> list[Sample]:
    """The fixed 350-sample workload: `num_slots` prompt slots of `group_size` completions, cut at `total`.

    The first `num_slots - repeat_slots` slots draw distinct (task, language) prompts; the remaining ones revisit
    earlier prompts as a second epoch would, each completion there repeating the first visit's with probability 0.5.
    """
    rng = random.Random(seed)
    combos = [(op, lang) for op in OPS for lang in LANG_NAMES]
    rng.shuffle(combos)
    first = combos[: num_slots - repeat_slots]
    slots = first + [first[i] for i in sorted(rng.sample(range(len(first)), repeat_slots))]
    kinds, weights = zip(*KIND_WEIGHTS.items())
    seen: dict[tuple[str, str], list[tuple[str, str]]] = {}
    out: list[Sample] = []
    for s, (op, lang) in enumerate(slots):
        earlier = seen.get((op.name, lang))
        group: list[tuple[str, str]] = []
        for j in range(group_size):
            if len(out) + len(group) >= total:
                break
            if earlier and rng.random() < 0.5:
                group.append(earlier[j % len(earlier)])
                continue
            kind = rng.choices(kinds, weights)[0]
            if kind == "duplicate":
                group.append(group[-1] if group else ("good", completion("good", op, lang, rng)))
            else:
                group.append((kind, completion(kind, op, lang, rng)))
        seen.setdefault((op.name, lang), group)
        prompt = prompt_for(op, lang)
        out += [Sample(prompt, text, lang, kind, s) for kind, text in group]
    return out
