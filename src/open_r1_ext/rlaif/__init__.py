"""Teacher-scored RLAIF (seed 003): a Claude teacher grades student code; GRPO trains a LoRA student on the grades.

- `teacher.AnthropicTeacher`: the teacher, an async TRL reward function with caching, truncation, prompt caching,
  a heuristic pre-filter, group batching, retries and token accounting.
- `trainer.RLAIFConfig` / `trainer.RLAIFGRPOTrainer`: `trainer_type: rlaif`.
- `fake_server.FakeMessagesServer`: a loopback Messages API for tests and `launch/bench_rlaif_tokens.py`.

The trainer names are imported lazily so that the teacher and the fake server load without TRL.
"""

from .teacher import AnthropicTeacher, MissingAPIKeyError, TeacherAuthError, TeacherConfig, TeacherStats


__all__ = [
    "AnthropicTeacher",
    "MissingAPIKeyError",
    "RLAIFConfig",
    "RLAIFGRPOTrainer",
    "TeacherAuthError",
    "TeacherConfig",
    "TeacherStats",
]


def __getattr__(name):
    if name in ("RLAIFConfig", "RLAIFGRPOTrainer"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
