"""The single launch script for every open-r1-ext trainer.

    accelerate launch src/open_r1_ext/grpo.py --config recipes/quickstart.yaml [--flag value ...]

The recipe's `trainer_type` picks the config dataclass and trainer class (`open_r1_ext.trainers.TRAINERS`); TRL's
`TrlParser` then reads the recipe (its values become defaults, CLI flags override them, unknown keys fail). The
script builds the model and tokenizer (hub id, local path, or `builtin:<task>`), the dataset (hub id, local file, or
`builtin:<task>`), the reward functions (registry names or dotted paths) and the peft config, trains, and resumes
from the last checkpoint in `output_dir` as open-r1 does. On built-in tasks it scores held-out accuracy before and
after training, and it always writes `results.json` and `reward.png` into `output_dir`.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys


# One torch thread per process: on small shared CPUs two threads beside another process ran 10-20x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

if __package__ in (None, ""):  # run as a file (`accelerate launch src/open_r1_ext/grpo.py`)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import yaml  # noqa: E402
from accelerate import PartialState  # noqa: E402
from transformers import AutoModelForCausalLM, TrainerCallback, set_seed  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402
from trl import ModelConfig, TrlParser, get_peft_config  # noqa: E402

from open_r1_ext.core.configs import GRPOScriptArguments, check_recipe_types  # noqa: E402
from open_r1_ext.core.data import load_datasets, load_tokenizer  # noqa: E402
from open_r1_ext.core.rewards import get_reward_funcs  # noqa: E402
from open_r1_ext.core.summary import (  # noqa: E402
    HeldOutEvaluator,
    RunSummaryCallback,
    plot_heldout,
    plot_reward,
    write_results,
)
from open_r1_ext.core.tiny import TinyModelSettings, build_builtin, parse_builtin_name  # noqa: E402
from open_r1_ext.trainers import TRAINERS, get_trainer_classes  # noqa: E402


logger = logging.getLogger("open_r1_ext")


def resolve_model_path(script_args: GRPOScriptArguments, model_args: ModelConfig) -> str:
    """A hub id or local path as given; `builtin:<task>` becomes the cached warm-started tiny model's folder."""
    task = parse_builtin_name(model_args.model_name_or_path or "")
    if task is None:
        return model_args.model_name_or_path
    settings = TinyModelSettings(
        task=task,
        warm_start_steps=script_args.warm_start_steps,
        warm_start_lr=script_args.warm_start_lr,
        warm_start_batch_size=script_args.warm_start_batch_size,
        seed=script_args.warm_start_seed,
    )
    with PartialState().main_process_first():  # one process trains the warm start, the others load it
        return str(build_builtin(settings))


def get_model_and_tokenizer(script_args, training_args, model_args):
    path = resolve_model_path(script_args, model_args)
    tokenizer = load_tokenizer(
        path, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
    )
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
        use_cache=not training_args.gradient_checkpointing,
    )
    return model, tokenizer


def _heldout_evaluator(tokenizer, task: str | None, script_args) -> HeldOutEvaluator | None:
    """Held-out pass@1 before, every `builtin_eval_every` steps, and after training, on a built-in task."""
    if task is None or script_args.builtin_eval_samples <= 0:
        return None
    return HeldOutEvaluator(
        tokenizer,
        task,
        n=script_args.builtin_eval_samples,
        seed=script_args.builtin_data_seed,
        temperature=script_args.builtin_eval_temperature,
        num_samples=script_args.builtin_eval_num_samples,
        greedy=script_args.builtin_eval_greedy,
        every=script_args.builtin_eval_every,
    )


class _SamplingSeed(TrainerCallback):
    """Reseeds the global RNG (what `generate` samples from) when training starts; the data order keeps `seed`."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_begin(self, args, state, control, **kwargs):
        set_seed(self.seed)


def _setup(training_args) -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    set_seed(training_args.seed)
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    # TrainingArguments sets up the process group (gloo with `use_cpu`, nccl on GPUs) the first time its device is
    # read; a bare PartialState() before that would pin the shared state to "not distributed" on CPU.
    _ = training_args.device


def _last_checkpoint(script_args, training_args) -> str | None:
    if not (script_args.resume and os.path.isdir(training_args.output_dir)):
        return None
    last = get_last_checkpoint(training_args.output_dir)
    if last is not None:
        print(f"[resume] Resuming from checkpoint {last}", flush=True)
    return last


def build_inputs(trainer_cls, script_args, training_args, model_args) -> dict:
    """What the trainer is built from: `model`, `processing_class`, `dataset` (a DatasetDict), `task` (the built-in
    task or None) and `reward_funcs`, following the trainer's launch protocol (`open_r1_ext.trainers`)."""
    build = getattr(trainer_cls, "build_model_and_data", None)
    if build is not None:  # its "model" and "data" are not a causal LM and prompts (char-level game, compression)
        built = build(script_args, training_args, model_args)
        inputs = {"model": built["model"], "processing_class": built.get("processing_class")}
        inputs.update(dataset=built["dataset"], task=None)
    else:
        dataset, task = load_datasets(script_args)
        model, tokenizer = get_model_and_tokenizer(script_args, training_args, model_args)
        inputs = {"model": model, "processing_class": tokenizer, "dataset": dataset, "task": task}
    # A trainer that brings its own reward (the RLAIF teacher) may run with `reward_funcs: []`.
    own_reward = getattr(trainer_cls, "provides_reward_funcs", False)
    wanted = script_args.reward_funcs or not own_reward
    inputs["reward_funcs"] = get_reward_funcs(script_args.reward_funcs) if wanted else []
    return inputs


def _report(trainer, summary: RunSummaryCallback, results: dict, script_args, training_args, task) -> None:
    """Print the held-out accuracy, write `results.json` and the plots (main process)."""
    held = summary.heldout_results()
    if "accuracy_after" in held:
        print(
            f"[eval] held-out accuracy after training: {held['accuracy_after']:.3f}"
            + (f" (before: {held['accuracy_before']:.3f})" if "accuracy_before" in held else ""),
            flush=True,
        )
    if hasattr(trainer, "summary_results"):  # trainer-specific figures (e.g. val bits/char, compression ratio)
        results.update(trainer.summary_results())
    path = write_results(training_args.output_dir, summary, results)
    if script_args.plot:
        out = training_args.output_dir
        name = script_args.trainer_type
        plot_reward(summary.curve, os.path.join(out, "reward.png"), title=f"{name}: reward per step")
        plot_heldout(
            summary.eval_curve, os.path.join(out, "heldout.png"), title=f"{name}: held-out accuracy on builtin:{task}"
        )
    print(f"[done] results in {path}", flush=True)


def main(script_args: GRPOScriptArguments, training_args, model_args: ModelConfig):
    _setup(training_args)
    state = PartialState()
    last_checkpoint = _last_checkpoint(script_args, training_args)
    _, trainer_cls = get_trainer_classes(script_args.trainer_type)
    inputs = build_inputs(trainer_cls, script_args, training_args, model_args)
    dataset, task = inputs["dataset"], inputs["task"]
    summary = RunSummaryCallback(_heldout_evaluator(inputs["processing_class"], task, script_args))
    callbacks = [summary] + ([] if script_args.sampling_seed is None else [_SamplingSeed(script_args.sampling_seed)])
    trainer = trainer_cls(
        model=inputs["model"],
        reward_funcs=inputs["reward_funcs"],
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=(dataset.get(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None),
        processing_class=inputs["processing_class"],
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    train_result = trainer.train(resume_from_checkpoint=last_checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    trainer.save_model(training_args.output_dir)

    results: dict = {"trainer_type": script_args.trainer_type, "seed": training_args.seed}
    results["world_size"] = state.num_processes
    if state.is_main_process:
        _report(trainer, summary, results, script_args, training_args, task)
    state.wait_for_everyone()
    return results


def _peek_trainer_type(argv: list[str]) -> tuple[str, dict]:
    """`trainer_type` from the CLI, else from the recipe, else `grpo`; also returns the recipe as a dict."""
    recipe: dict = {}
    if "--config" in argv:
        with open(argv[argv.index("--config") + 1]) as f:
            recipe = yaml.safe_load(f) or {}
        if not isinstance(recipe, dict):
            raise ValueError("A recipe must be a YAML mapping of `key: value` lines")
    for i, a in enumerate(argv):
        if a == "--trainer_type" and i + 1 < len(argv):
            return argv[i + 1], recipe
        if a.startswith("--trainer_type="):
            return a.split("=", 1)[1], recipe
    return recipe.get("trainer_type", "grpo"), recipe


def make_parser(trainer_type: str) -> TrlParser:
    config_cls, _ = get_trainer_classes(trainer_type)
    return TrlParser((GRPOScriptArguments, config_cls, ModelConfig))


def parse_args(argv: list[str] | None = None):
    """Parse a recipe plus CLI flags into `(script_args, training_args, model_args)` with clear errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    trainer_type, recipe = _peek_trainer_type(argv)
    parser = make_parser(trainer_type)
    check_recipe_types({k: v for k, v in recipe.items() if k != "env"}, parser.dataclass_types)
    known = {a.dest for a in parser._actions}
    unknown = [k for k in recipe if k not in known and k != "env"]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"Unknown recipe keys for trainer_type {trainer_type!r}: {', '.join(hints)}. "
            f"Known trainer types: {sorted(TRAINERS)}."
        )
    return parser.parse_args_and_config(argv)


def cli():
    script_args, training_args, model_args = parse_args()
    main(script_args, training_args, model_args)


if __name__ == "__main__":
    cli()
