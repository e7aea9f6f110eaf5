"""Extra trainer state in checkpoints, written and read the same way by every trainer.

A trainer's extra state (counters, buffers, controllers, caches) is one dict per `name`, stored beside the model in
`checkpoint-N/open_r1_ext_<name>.pt` (`per_process=False`: written by the main process, read by all) or in
`checkpoint-N/open_r1_ext_<name>_rank<r>.pt` (`per_process=True`: each process writes and reads its own, with the
world size it was written under). Trainers call `save_extra_state` from `_save_checkpoint` and `load_extra_state`
from `_load_optimizer_and_scheduler`, the hooks TRL uses for its own adaptive-entropy state, so the state moves with
the checkpoint `Trainer` resumes from.

Rules, the same for every trainer: a checkpoint without the file resumes with a warning that names the state (the
state restarts empty); per-process state resumed under another world size is refused with a message, since
buffers belong to the processes that filled them; files hold only tensors, numbers, strings, lists and dicts, so they
load with `weights_only=True`.
"""

from __future__ import annotations

import logging
import os

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


logger = logging.getLogger(__name__)


def checkpoint_folder(trainer, trial=None) -> str:
    """The folder `Trainer._save_checkpoint` is writing for the current step."""
    return os.path.join(trainer._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


def _path(folder: str, name: str, per_process: bool, rank: int) -> str:
    return os.path.join(folder, f"open_r1_ext_{name}_rank{rank}.pt" if per_process else f"open_r1_ext_{name}.pt")


def save_extra_state(trainer, trial, name: str, state: dict, per_process: bool = False) -> str | None:
    """Write `state` into the checkpoint being saved; returns the path written (None on processes that write none)."""
    acc = trainer.accelerator
    if not per_process and not acc.is_main_process:
        return None
    folder = checkpoint_folder(trainer, trial)
    os.makedirs(folder, exist_ok=True)
    path = _path(folder, name, per_process, acc.process_index)
    torch.save({"world_size": acc.num_processes, "state": state}, path)
    return path


def load_extra_state(trainer, checkpoint: str | None, name: str, per_process: bool = False) -> dict | None:
    """The state saved under `name` in `checkpoint`, or None (no checkpoint; or no file, with a warning)."""
    if checkpoint is None:
        return None
    acc = trainer.accelerator
    path = _path(checkpoint, name, per_process, acc.process_index)
    if not os.path.exists(path):
        logger.warning("No %s in %s: the %s state restarts empty", os.path.basename(path), checkpoint, name)
        return None
    payload = torch.load(path, weights_only=True)
    if per_process and payload["world_size"] != acc.num_processes:
        raise ValueError(
            f"{checkpoint} holds per-process {name} state written by {payload['world_size']} processes; resuming "
            f"with {acc.num_processes} would drop or duplicate it. Resume with {payload['world_size']} processes, "
            "or start a new run (`--resume false`, or a new output_dir)."
        )
    return payload["state"]
