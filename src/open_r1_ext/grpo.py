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
import json
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

from open_r1_ext.core.configs import GRPOScriptArguments, UserError, check_ranges, check_recipe_types  # noqa: E402
from open_r1_ext.core.data import load_datasets, load_tokenizer  # noqa: E402
from open_r1_ext.core.rewards import get_reward_funcs, nonfinite_counts  # noqa: E402
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
    return get_last_checkpoint(training_args.output_dir)


def finished_run(script_args, training_args, last_checkpoint: str | None) -> str | None:
    """A message when `output_dir` already holds this run finished at `max_steps` (rerunning it would train past
    its end and overwrite its results), else None. Only with `resume` (the default)."""
    if not script_args.resume or training_args.max_steps <= 0:
        return None
    out = training_args.output_dir
    step = None
    if last_checkpoint is not None:
        with open(os.path.join(last_checkpoint, "trainer_state.json")) as f:
            step = json.load(f).get("global_step")
    elif os.path.exists(os.path.join(out, "results.json")):
        with open(os.path.join(out, "results.json")) as f:
            step = json.load(f).get("global_step")
    if step is None or step < training_args.max_steps:
        return None
    return (
        f"{out} already holds a finished run: step {step} of max_steps {training_args.max_steps} (see "
        f"{os.path.join(out, 'results.json')}). Nothing to train. To continue training it, raise --max_steps; to "
        "train again from scratch (overwriting it), pass --resume false or choose another --output_dir."
    )


def build_inputs(trainer_cls, script_args, training_args, model_args) -> dict:
    """What the trainer is built from: `model`, `processing_class`, `dataset` (a DatasetDict), `task` (the built-in
    task or None) and `reward_funcs`, following the trainer's launch protocol (`open_r1_ext.trainers`). Cheap checks
    come first (reward names, the dataset), the model last: a mistake is found before a warm start is trained."""
    # A trainer that brings its own reward (the RLAIF teacher) may run with `reward_funcs: []`.
    own_reward = getattr(trainer_cls, "provides_reward_funcs", False)
    wanted = script_args.reward_funcs or not own_reward
    reward_funcs = get_reward_funcs(script_args.reward_funcs) if wanted else []
    build = getattr(trainer_cls, "build_model_and_data", None)
    if build is not None:  # its "model" and "data" are not a causal LM and prompts (char-level game, compression)
        built = build(script_args, training_args, model_args)
        inputs = {"model": built["model"], "processing_class": built.get("processing_class")}
        inputs.update(dataset=built["dataset"], task=None)
    else:
        dataset, task = load_datasets(script_args)
        if script_args.dataset_train_split not in dataset:
            raise UserError(
                f"dataset {script_args.dataset_name!r} has no split {script_args.dataset_train_split!r} (splits: "
                f"{list(dataset)}); set dataset_train_split"
            )
        model, tokenizer = get_model_and_tokenizer(script_args, training_args, model_args)
        inputs = {"model": model, "processing_class": tokenizer, "dataset": dataset, "task": task}
    inputs["reward_funcs"] = reward_funcs
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
    results["global_step"] = trainer.state.global_step
    results["nonfinite_rewards"] = nonfinite_counts(getattr(trainer, "reward_funcs", []))
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
    done = finished_run(script_args, training_args, last_checkpoint)
    if done is not None:
        print(f"[done] {done}", flush=True)
        return {"finished": True, "output_dir": training_args.output_dir}
    if last_checkpoint is not None:
        print(f"[resume] Resuming from checkpoint {last_checkpoint}", flush=True)
    _, trainer_cls = get_trainer_classes(script_args.trainer_type)
    preflight = getattr(trainer_cls, "preflight", None)
    if preflight is not None:  # the trainer's own checks that need no model (an API key, an endpoint)
        preflight(script_args, training_args)
    inputs = build_inputs(trainer_cls, script_args, training_args, model_args)
    dataset, task = inputs["dataset"], inputs["task"]
    summary = RunSummaryCallback(_heldout_evaluator(inputs["processing_class"], task, script_args))
    if last_checkpoint is not None:
        summary.load(last_checkpoint)  # the curves, tokens and seconds of the steps before the checkpoint
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


USAGE = (
    "usage: python src/open_r1_ext/grpo.py --config RECIPE.yaml [--key value ...]   (recipes/ holds examples; "
    "--help lists every setting of the recipe's trainer_type)"
)


def _read_recipe(argv: list[str]) -> dict:
    if "--config" not in argv:
        return {}
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise UserError(f"--config needs a recipe file\n{USAGE}")
    path = argv[i + 1]
    if not os.path.isfile(path):
        raise UserError(f"recipe file {path!r} does not exist ({os.path.abspath(path)})")
    with open(path) as f:
        try:
            recipe = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"recipe {path!r} is not valid YAML: {exc}") from None
    if not isinstance(recipe, dict):
        raise UserError(f"recipe {path!r} must be a YAML mapping of `key: value` lines")
    return recipe


def _peek(argv: list[str], recipe: dict, key: str, default=None):
    """`key`'s value from the command line (`--key v` or `--key=v`), else from the recipe, else `default`."""
    for i, a in enumerate(argv):
        if a == f"--{key}" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(f"--{key}="):
            return a.split("=", 1)[1]
    return recipe.get(key, default)


def _peek_trainer_type(argv: list[str]) -> tuple[str, dict]:
    """`trainer_type` from the CLI, else from the recipe, else `grpo`; also returns the recipe as a dict."""
    recipe = _read_recipe(argv)
    return _peek(argv, recipe, "trainer_type", "grpo"), recipe


def _parser_error(message: str):
    """argparse's `error` without the pages of usage: the message and where to look."""
    raise UserError(f"{message}\n(python src/open_r1_ext/grpo.py --config RECIPE.yaml --help lists every setting)")


def make_parser(trainer_type: str) -> TrlParser:
    config_cls, _ = get_trainer_classes(trainer_type)
    parser = TrlParser((GRPOScriptArguments, config_cls, ModelConfig))
    parser.error = _parser_error
    return parser


def parse_args(argv: list[str] | None = None):
    """Parse a recipe plus CLI flags into `(script_args, training_args, model_args)` with clear errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise UserError(USAGE)
    trainer_type, recipe = _peek_trainer_type(argv)
    if trainer_type not in TRAINERS:
        raise UserError(f"Unknown trainer_type {trainer_type!r}; known trainer types: {sorted(TRAINERS)}")
    check_ranges({k: _peek(argv, recipe, k) for k in ("num_generations", "max_completion_length")})
    parser = make_parser(trainer_type)
    check_recipe_types({k: v for k, v in recipe.items() if k != "env"}, parser.dataclass_types)
    known = {a.dest for a in parser._actions}
    unknown = [k for k in recipe if k not in known and k != "env"]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UserError(
            f"Unknown recipe keys for trainer_type {trainer_type!r}: {', '.join(hints)}. "
            f"Known trainer types: {sorted(TRAINERS)}."
        )
    try:
        return parser.parse_args_and_config(argv)
    except UserError:
        raise
    except (ValueError, TypeError) as exc:  # a config's __post_init__ rejecting a value: the user's to fix
        raise UserError(f"{type(exc).__name__} in the settings: {exc}") from exc


def _close_process_group():
    """Tear a multi-process run's group down before interpreter exit: left to exit, gloo's threads could be
    destroyed while still joinable and abort a finished run (SIGABRT, "terminate called without an active
    exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cli(argv: list[str] | None = None):
    """Parse, check and run; a `UserError` prints one message (no traceback unless `OPEN_R1_EXT_DEBUG=1`)."""
    debug = os.environ.get("OPEN_R1_EXT_DEBUG", "") not in ("", "0")
    try:
        script_args, training_args, model_args = parse_args(argv)
        main(script_args, training_args, model_args)
        _close_process_group()
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    cli()
