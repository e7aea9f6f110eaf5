"""Hyper-parameter search for token compression: Optuna (TPE), every trial trained by the launch script.

    python launch/compression_search.py --config recipes/compression_cpu.yaml --max-trials 20

Searches the policy and reconstructor learning rates, the group size, the credit window and the distortion measure at
the recipe's λ. Each trial trains `max_steps` joint steps into `output_dir/trial_<n>` through `open_r1_ext.grpo.main`
(the single launch script) and scores the saved policy on the validation plays by the rate-distortion objective it
is meant to maximise, measured: `ratio - λ · ratio · (1 - recovery)` per sequence (rate minus λ times the share of
tokens removed and not recovered), averaged (no similarity model, to keep trials cheap). The study lives in an SQLite file (`search_storage`, default `output_dir/optuna.db`): rerunning
the command resumes it and runs only the trials still missing to reach `--max-trials`. The best trial is printed and
written to `output_dir/best_trial.json`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (first: puts src/ on sys.path, one thread per process)
import optuna
from trl import ModelConfig, TrlParser

from open_r1_ext.compression.config import CompressionConfig
from open_r1_ext.compression.data import load_split, load_tokenizer
from open_r1_ext.compression.evaluation import evaluate_model
from open_r1_ext.compression.models import CompressionModel
from open_r1_ext.core.configs import GRPOScriptArguments
from open_r1_ext.grpo import main as train


@dataclass
class SearchArguments:
    max_trials: int = field(default=20, metadata={"help": "Total trials of the study (finished ones count)."})
    study_name: str = field(default="compression", metadata={"help": "Optuna study name inside the storage."})
    search_storage: str | None = field(
        default=None, metadata={"help": "Optuna storage URL; default sqlite:///<output_dir>/optuna.db."}
    )


def objective_factory(script_args, base_args: CompressionConfig, model_args, log=print):
    # GRPOConfig requires the batch to be a multiple of the group size
    group_sizes = [g for g in (2, 4, 8) if base_args.per_device_train_batch_size % g == 0] or [2]

    def objective(trial) -> float:
        args = dataclasses.replace(
            base_args,
            output_dir=str(Path(base_args.output_dir) / f"trial_{trial.number}"),
            learning_rate=trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
            policy_learning_rate=trial.suggest_float("policy_learning_rate", 1e-4, 3e-3, log=True),
            num_generations=trial.suggest_categorical("num_generations", group_sizes),
            distortion=trial.suggest_categorical("distortion", ["nll", "error"]),
            credit_window=trial.suggest_categorical("credit_window", [-1, 2, 4, 8]),
            save_strategy="no",
            # derived by GRPOConfig.__post_init__ from the batch size; recomputed for the new group size
            generation_batch_size=None,
            steps_per_generation=None,
        )
        train(script_args, args, model_args)  # saves the final model into args.output_dir
        data = load_split(args.data_dir, "validation")
        if args.eval_num_sequences:
            data = data[: args.eval_num_sequences]
        model = CompressionModel.from_folder(args.output_dir)
        res = evaluate_model(
            model, data, load_tokenizer(args.data_dir), methods=("policy",), seed=args.seed, decode_steps=1
        )["policy"]
        lam = args.distortion_lambda
        per_seq = [r - lam * r * (0.0 if rec != rec else 1.0 - rec) for r, rec in zip(res["ratio"], res["recovery"])]
        value = sum(per_seq) / len(per_seq)
        trial.set_user_attr("ratio", sum(res["ratio"]) / len(res["ratio"]))
        log(f"[search] trial {trial.number}: objective {value:.4f} with {trial.params}")
        return value

    return objective


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--trainer_type" or a.startswith("--trainer_type=") for a in argv):
        argv += ["--trainer_type", "compression"]  # what every trial's launch-script run builds
    parser = TrlParser((GRPOScriptArguments, CompressionConfig, ModelConfig, SearchArguments))
    script_args, args, model_args, search = parser.parse_args_and_config(argv)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    storage = search.search_storage or f"sqlite:///{Path(args.output_dir).resolve() / 'optuna.db'}"
    study = optuna.create_study(
        study_name=search.study_name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
    )
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    # A sampler seeded the same way on every call would draw trial 0's parameters again after a resume: seed it
    # by how far the study has got, so a resumed search is still deterministic but continues where it stopped.
    study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))
    todo = max(search.max_trials - done, 0)
    print(f"[search] {storage}: {done} finished trials, running {todo} more", flush=True)
    if todo:
        study.optimize(objective_factory(script_args, args, model_args), n_trials=todo)
    best = study.best_trial
    report = {
        "best_value": best.value,
        "best_params": best.params,
        "best_trial": best.number,
        "ratio": best.user_attrs.get("ratio"),
        "trials": len(study.trials),
        "storage": storage,
    }
    (Path(args.output_dir) / "best_trial.json").write_text(json.dumps(report, indent=2))
    print(f"[search] best trial {best.number}: validation objective {best.value:.4f} with {best.params}", flush=True)
    return report


if __name__ == "__main__":
    main()
