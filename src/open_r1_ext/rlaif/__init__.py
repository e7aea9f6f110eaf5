"""Teacher-scored RLAIF (seed 003): a Claude teacher grades student code; GRPO trains a LoRA student on the grades.

- `config.TeacherConfig`: the teacher's settings, all `teacher_*`, declared once; `config.RLAIFConfig` inherits them.
- `teacher.AnthropicTeacher`: the teacher, an async TRL reward function; it routes samples through the heuristic
  pre-filter (`heuristics`), the SQLite score cache (`cache`) and batching, and builds its requests with
  `prompts` (a forced `record_scores` tool call), sends them with `client.TeacherClient` (the SDK's retries, the
  preflight, the API key), reads the scores by candidate index with `replies` and counts tokens and faults in
  `stats.TeacherStats`.
- `trainer.RLAIFGRPOTrainer`: `trainer_type: rlaif`.
- `fake_server.FakeMessagesServer`: a loopback Messages API for tests and `launch/bench_rlaif_tokens.py`.

Every name is imported lazily: the fake server loads without TRL (the configs, and so the teacher, need it).
"""

import importlib


# public name -> submodule that defines it
_LAZY = {
    "AnthropicTeacher": "teacher",
    "MissingAPIKeyError": "client",
    "RLAIFConfig": "config",
    "RLAIFGRPOTrainer": "trainer",
    "TeacherAuthError": "client",
    "TeacherConfig": "config",
    "TeacherConfigError": "client",
    "TeacherFailureError": "teacher",
    "TeacherStats": "stats",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
