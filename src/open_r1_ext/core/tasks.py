"""Synthetic verifiable tasks for offline RL: a seeded generator, a gold answer, and an answer extractor.

Every task writes prompts and completions in a small character alphabet so that a one-token-per-character
tokenizer (see `open_r1_ext.core.tiny`) covers them. A completion always ends with `>` followed by the final
answer, so one extractor serves every task; tasks differ in what comes before (a scratchpad or nothing).

| task              | prompt        | completion                              | completion length |
|-------------------|---------------|-----------------------------------------|-------------------|
| `addition`        | `347+286=`    | `>336` (answer digits reversed)          | 5 tokens          |
| `addition_scratch`| `347+286=`    | `7+6+0=13,4+8+1=13,3+2+1=06,>336`        | 32 tokens         |
| `running_sum`     | `3 5 8 2 7=`  | `3,8,16,18,25>25`                        | 15-20 tokens      |

Reversing the answer digits (least significant first) lets a left-to-right model compute carries in order,
which a 1M-parameter model learns in minutes; the scratchpad tasks give prefix-level methods 15-30+ tokens
to act on.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass


ANSWER_MARK = ">"
BUILTIN_PREFIX = "builtin:"


def parse_builtin_name(name: str | None) -> str | None:
    """`builtin:addition` -> `addition` (a built-in task, model or dataset name); anything else -> None."""
    return name[len(BUILTIN_PREFIX) :] if name and name.startswith(BUILTIN_PREFIX) else None


def extract_answer(completion: str) -> str:
    """The text after the last `>` (the whole stripped completion when there is none), up to the first space."""
    text = completion.rsplit(ANSWER_MARK, 1)[-1] if ANSWER_MARK in completion else completion
    text = text.strip()
    return text.split()[0] if text else ""


def _addition(rng: random.Random, digits: int, scratch: bool) -> tuple[str, str, str]:
    a, b = rng.randrange(10**digits), rng.randrange(10**digits)
    prompt = f"{a:0{digits}d}+{b:0{digits}d}="
    answer = str(a + b).zfill(digits + 1)[::-1].rstrip("0") or "0"
    steps, carry = [], 0
    if scratch:
        da, db = f"{a:0{digits}d}"[::-1], f"{b:0{digits}d}"[::-1]
        for x, y in zip(da, db):
            s = int(x) + int(y) + carry
            steps.append(f"{x}+{y}+{carry}={s:02d},")
            carry = s // 10
    completion = "".join(steps) + ANSWER_MARK + answer
    return prompt, completion, answer


def scratchpad_steps(prompt: str) -> list[str] | None:
    """The correct column steps (`"7+6+0=13"`, ...) of an `addition_scratch` prompt `"347+286="`, else None."""
    body = prompt.strip().rstrip("=")
    a, plus, b = body.partition("+")
    if not plus or not (a.isdigit() and b.isdigit()) or len(a) != len(b):
        return None
    steps, carry = [], 0
    for x, y in zip(a[::-1], b[::-1]):
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}+{carry}={total:02d}")
        carry = total // 10
    return steps


def _running_sum(rng: random.Random, length: int) -> tuple[str, str, str]:
    xs = [rng.randrange(1, 10) for _ in range(length)]
    prompt = " ".join(map(str, xs)) + "="
    sums, total = [], 0
    for x in xs:
        total += x
        sums.append(str(total))
    answer = str(total)
    return prompt, ",".join(sums) + ANSWER_MARK + answer, answer


@dataclass(frozen=True)
class Task:
    """A task: `make(rng) -> (prompt, reference_completion, answer)` plus its defaults."""

    name: str
    make: Callable[[random.Random], tuple[str, str, str]]
    max_completion_length: int
    description: str


TASKS: dict[str, Task] = {
    "addition": Task(
        "addition", lambda rng: _addition(rng, 3, scratch=False), 8, "3-digit addition, answer digits reversed"
    ),
    "addition_scratch": Task(
        "addition_scratch",
        lambda rng: _addition(rng, 3, scratch=True),
        40,
        "3-digit addition with a written-out scratchpad of column sums and carries (32-token completions)",
    ),
    "running_sum": Task(
        "running_sum", lambda rng: _running_sum(rng, 5), 24, "sum of five digits, written as running sums"
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown built-in task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


# Held-out problems are a fixed part of each task's problem space, not a separate random stream: a prompt belongs to
# the test split when its CRC-32 is 0 mod `_TEST_SHARE`, and the train and warm-up streams skip those prompts. So no
# held-out problem is ever trained on, however many training or warm-up rows are drawn (a 1,200-step warm start at
# batch 128 draws 153,600 of the 1e6 possible 3-digit additions; excluding a sample of the training rows would not
# keep them apart). The splits' seeds are far apart so their streams differ too.
_SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_003, "warmup": 2_000_029}
_TEST_SHARE = 10


def is_test_problem(prompt: str) -> bool:
    """Whether `prompt` belongs to the held-out split (about one problem in `_TEST_SHARE`)."""
    return zlib.crc32(prompt.encode()) % _TEST_SHARE == 0


def generate(task: str, n: int, seed: int = 0, split: str = "train") -> list[dict[str, str]]:
    """`n` rows `{"prompt", "completion", "answer", "task"}` from a seeded generator (deterministic in its args).

    `split="test"` draws only held-out problems (`is_test_problem`), `"train"` and `"warmup"` only the others.
    """
    if split not in _SPLIT_SEED_OFFSET:
        raise ValueError(f"Unknown split {split!r}; known splits: {sorted(_SPLIT_SEED_OFFSET)}")
    spec = get_task(task)
    rng = random.Random(seed * 7919 + _SPLIT_SEED_OFFSET[split])
    want_test = split == "test"
    rows = []
    while len(rows) < n:
        prompt, completion, answer = spec.make(rng)
        if is_test_problem(prompt) != want_test:
            continue
        rows.append({"prompt": prompt, "completion": completion, "answer": answer, "task": task})
    return rows
