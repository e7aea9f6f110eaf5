"""Script arguments shared by every trainer, and the recipe checks TRL's parser does not make."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field

from trl import ScriptArguments


class UserError(ValueError):
    """A mistake in what the user asked for (a recipe, a flag, a file): the launch script prints it without a
    traceback (set `OPEN_R1_EXT_DEBUG=1` for one). The message says what, where, and how to fix it."""


@dataclass
class GRPOScriptArguments(ScriptArguments):
    """Arguments of `grpo.py` beyond TRL's `ScriptArguments` (dataset name, splits, ...).

    `dataset_name` accepts a hub id, a local `.json/.jsonl/.csv/.parquet/.txt` file or folder, or `builtin:<task>`
    for the offline synthetic tasks. `model_name_or_path` (in TRL's `ModelConfig`) accepts `builtin:<task>` for
    the cached warm-started tiny model.
    """

    trainer_type: str = field(
        default="grpo",
        metadata={"help": "Which trainer runs the recipe; see `open_r1_ext.trainers.TRAINERS` for the names."},
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward functions by registry name or dotted import path (`pkg.mod:fn`)."},
    )
    prompt_column: str = field(
        default="prompt",
        metadata={"help": "Column holding the prompt; a `problem` column is wrapped into a chat prompt instead."},
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt prepended to chat prompts built from a `problem` column."}
    )
    builtin_num_train: int = field(default=20_000, metadata={"help": "Training problems drawn for `builtin:` tasks."})
    builtin_data_seed: int = field(default=0, metadata={"help": "Seed of the built-in task generator."})
    builtin_eval_samples: int = field(
        default=512,
        metadata={
            "help": "Fixed held-out problems scored before, during (`builtin_eval_every`) and after training on "
            "`builtin:` tasks (0 to skip)."
        },
    )
    builtin_eval_temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the held-out pass@1 (0 = greedy)."}
    )
    builtin_eval_num_samples: int = field(
        default=1, metadata={"help": "Samples per held-out problem for pass@1 (more samples, less noise)."}
    )
    builtin_eval_greedy: bool = field(
        default=True, metadata={"help": "Also score greedy decoding on the held-out problems at every evaluation."}
    )
    builtin_eval_every: int = field(
        default=0,
        metadata={
            "help": "Score held-out accuracy every N optimizer steps (0: only before and after training); the curve "
            "against steps, generated tokens and training seconds goes into `results.json` and `heldout.png`."
        },
    )
    warm_start_steps: int = field(
        default=300, metadata={"help": "Supervised steps that warm-start a `builtin:` model (cached on disk)."}
    )
    warm_start_lr: float = field(default=2e-3, metadata={"help": "Learning rate of the warm start."})
    warm_start_batch_size: int = field(default=128, metadata={"help": "Batch size of the warm start."})
    warm_start_seed: int = field(default=0, metadata={"help": "Seed of the warm start (fixed: the cache key)."})
    sampling_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the global RNG that rollouts are sampled from, set when training starts (default: "
            "`seed`, which also fixes the data order). The comparison protocol's A/A arm changes only this."
        },
    )
    plot: bool = field(default=True, metadata={"help": "Write `reward.png` (reward per step) into `output_dir`."})
    resume: bool = field(
        default=True, metadata={"help": "Resume from the last checkpoint in `output_dir` when there is one."}
    )


def _type_ok(value, tp) -> bool:
    """Whether `value` fits the dataclass annotation `tp` (recursively for Optional, unions, lists, Literal)."""
    if tp is typing.Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple, set):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple, set)) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return isinstance(value, tp) or value in {m.value for m in tp} or value in tp.__members__
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # forward references and exotic annotations: leave them to the dataclass itself


def check_recipe_types(recipe: dict, dataclass_types) -> None:
    """Raise `ValueError` naming every recipe key whose YAML value does not fit its field's type.

    TRL's parser installs YAML values as argparse defaults, which argparse converts only when they are strings,
    so `learning_rate: [1, 2]` or `num_generations: "eight"` would otherwise surface much later, or never.
    """
    errors = []
    for dc in dataclass_types:
        hints = typing.get_type_hints(dc)
        for f in dataclasses.fields(dc):
            if f.name not in recipe or not f.init:
                continue
            value, tp = recipe[f.name], hints.get(f.name, f.type)
            if isinstance(value, str) and not _type_ok(value, tp) and not _is_sequence_type(tp):
                continue  # argparse converts string values with the field's type and reports failures itself
            if not _type_ok(value, tp):
                errors.append(f"{f.name}: {value!r} is not a valid {_type_name(tp)} (in {dc.__name__})")
    if errors:
        raise ValueError("Recipe has values of the wrong type:\n  " + "\n  ".join(errors))


def _is_sequence_type(tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(tp) if a is not type(None))
    return origin in (list, tuple, set)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def default_config(config_cls, model, args=None):
    """`args` when given, else `config_cls("<model name>-<trainer>")`: TRL's default (`GRPOConfig(f"{name}-GRPO")`)
    for a trainer built without a config. `model` is a hub id, a path, or a model with a `config`."""
    if args is not None:
        return args
    name = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "")
    name = str(name or "model").rstrip("/").split("/")[-1] or "model"
    return config_cls(f"{name}-{config_cls.__name__.removesuffix('Config')}")


def check_ranges(values: dict) -> None:
    """Ranges TRL's config does not check, or checks only with an arithmetic error (`num_generations: 0` is a
    ZeroDivisionError inside `GRPOConfig`): called on the recipe's and the command line's raw values."""
    problems = []

    def as_int(key):
        try:
            return int(values[key]) if values.get(key) is not None else None
        except (TypeError, ValueError):
            return None  # a wrong type is reported by the type check

    num_generations, max_len = as_int("num_generations"), as_int("max_completion_length")
    if num_generations is not None and num_generations < 2:
        problems.append(
            f"num_generations: {num_generations!r}; GRPO compares completions of one prompt, so it needs >= 2"
        )
    if max_len is not None and max_len < 1:
        problems.append(f"max_completion_length: {max_len!r}; a completion needs at least 1 token")
    if problems:
        raise UserError("Invalid training settings:\n  " + "\n  ".join(problems))
