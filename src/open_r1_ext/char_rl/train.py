"""Stand-alone entry point for the char-level game, the same as `grpo.py` with `trainer_type: char_grpo`.

    python -m open_r1_ext.char_rl.train --config recipes/char_grpo_cpu_quick.yaml [--flag value ...]

Kept for running the game without the launch script's prompt-dataset machinery; it parses the same recipes
(`trainer_type`, `model_name_or_path` and `dataset_name` are accepted and ignored: the corpus and the model
preset come from `CharGRPOConfig`). Resumes from the last checkpoint in `output_dir` and writes `results.json`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field


os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from transformers import set_seed  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402
from trl import TrlParser  # noqa: E402

from open_r1_ext.char_rl.trainer import CharGRPOConfig, CharGRPOTrainer  # noqa: E402


@dataclass
class _LaunchKeys:
    """Recipe keys meant for `grpo.py`, accepted here so one recipe serves both entry points."""

    trainer_type: str = field(default="char_grpo", metadata={"help": "Must be `char_grpo`."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Ignored (the model is built)."})
    dataset_name: str | None = field(default=None, metadata={"help": "Ignored (the corpus is `corpus`)."})
    reward_funcs: list[str] = field(default_factory=list, metadata={"help": "Must be empty."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last checkpoint in `output_dir`."})


def main(launch: _LaunchKeys, args: CharGRPOConfig) -> dict:
    if launch.trainer_type != "char_grpo":
        raise ValueError(f"This entry point runs trainer_type 'char_grpo', got {launch.trainer_type!r}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    set_seed(args.seed)
    built = CharGRPOTrainer.build_model_and_data(None, args)
    trainer = CharGRPOTrainer(
        model=built["model"],
        reward_funcs=launch.reward_funcs,
        args=args,
        train_dataset=built["dataset"]["train"],
        eval_dataset=built["dataset"]["test"],
        processing_class=built["processing_class"],
    )
    last = get_last_checkpoint(args.output_dir) if launch.resume and os.path.isdir(args.output_dir) else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(args.output_dir)
    results = trainer.summary_results()
    if trainer.accelerator.is_main_process:
        with open(os.path.join(args.output_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        print(
            f"[done] val CE {results['val_ce']:.4f} nats/char ({results['val_bpc']:.3f} bits/char), "
            f"top-1 {results['val_accuracy']:.4f}; results in {args.output_dir}/results.json",
            flush=True,
        )
    return results


def cli(argv: list[str] | None = None) -> dict:
    parser = TrlParser((_LaunchKeys, CharGRPOConfig))
    launch, args = parser.parse_args_and_config(list(sys.argv[1:] if argv is None else argv))
    return main(launch, args)


if __name__ == "__main__":
    cli()
