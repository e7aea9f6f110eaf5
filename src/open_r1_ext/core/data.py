"""Datasets and tokenizers for the launch script: a hub id, a local file or folder, or a built-in synthetic task."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset
from transformers import AutoTokenizer

from . import tasks as tasks_mod
from .configs import UserError


_LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def builtin_dataset(task: str, num_train: int, seed: int = 0, num_test: int = 256) -> DatasetDict:
    """`train` and `test` splits of a built-in task, with `prompt`, `completion`, `answer` and `task` columns."""
    return DatasetDict(
        {
            "train": Dataset.from_list(tasks_mod.generate(task, num_train, seed=seed, split="train")),
            "test": Dataset.from_list(tasks_mod.generate(task, num_test, seed=seed, split="test")),
        }
    )


def load_any(name: str, config: str | None = None) -> DatasetDict:
    """Load `name`: a local file (by extension) or folder, else a hub dataset id.

    Local files use the `datasets` builder that matches their extension; a `.txt` file becomes one row per line
    in a `text` column. A local file yields a single `train` split.
    """
    path = Path(name).expanduser()
    if path.is_file():
        builder = _LOCAL_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"Unsupported local dataset file {name!r}; expected one of {sorted(_LOCAL_BUILDERS)}")
        _check_has_rows(path)
        return load_dataset(builder, data_files=str(path))
    if path.is_dir():
        return load_dataset(str(path), config)
    if _looks_local(name):
        raise UserError(
            f"dataset_name {name!r} looks like a local file or folder, but {path.resolve()} does not exist "
            "(relative paths are read from the directory the command runs in)"
        )
    return load_dataset(name, config)


def _looks_local(name: str) -> bool:
    """A name the user meant as a path: a known data-file extension, or an explicit path prefix or trailing slash."""
    return Path(name).suffix.lower() in _LOCAL_BUILDERS or name.startswith((".", "/", "~")) or name.endswith("/")


def _check_has_rows(path: Path) -> None:
    """Fail clearly on a file with no rows (the `datasets` builders fail with StopIteration or 'no data')."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    header = 1 if path.suffix.lower() == ".csv" else 0
    if path.suffix.lower() != ".parquet" and len(lines) <= header:
        what = "only a header line" if lines else "no rows"
        raise UserError(f"dataset file {str(path)!r} has {what}; it needs at least one example")


def to_prompt_format(ds: DatasetDict, prompt_column: str = "prompt", system_prompt: str | None = None) -> DatasetDict:
    """Give every split a `prompt` column as TRL's GRPOTrainer expects.

    A dataset that has `prompt_column` is used as is (renamed to `prompt`). One with a `problem` column (open-r1's
    math sets) gets a chat prompt `[system?, user: problem]`; `solution` stays for the accuracy reward.
    """

    def make_conversation(example):
        msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return {"prompt": [*msgs, {"role": "user", "content": example["problem"]}]}

    out = {}
    for split, d in ds.items():
        if prompt_column in d.column_names:
            out[split] = d if prompt_column == "prompt" else d.rename_column(prompt_column, "prompt")
        elif "problem" in d.column_names:
            out[split] = d.map(make_conversation)
        else:
            raise UserError(
                f"Dataset split {split!r} has neither a {prompt_column!r} nor a 'problem' column "
                f"(columns: {d.column_names}); set `prompt_column` in the recipe."
            )
    return DatasetDict(out)


def load_datasets(script_args) -> tuple[DatasetDict, str | None]:
    """The recipe's dataset in prompt format, and the built-in task it names (None for other datasets).

    `script_args` is a `GRPOScriptArguments`: `dataset_name` (hub id, local file or folder, `builtin:<task>`),
    `dataset_config`, `prompt_column`, `system_prompt`, and the `builtin_*` sizes and seed.
    """
    task = tasks_mod.parse_builtin_name(script_args.dataset_name)
    if task is not None:
        ds = builtin_dataset(
            task,
            script_args.builtin_num_train,
            seed=script_args.builtin_data_seed,
            num_test=max(script_args.builtin_eval_samples, 1),
        )
    elif script_args.dataset_name:
        ds = load_any(script_args.dataset_name, script_args.dataset_config)
    else:
        raise UserError("No dataset: set `dataset_name` (hub id, local file, or builtin:<task>)")
    return to_prompt_format(ds, script_args.prompt_column, script_args.system_prompt), task


def load_tokenizer(path: str, **kwargs):
    """`AutoTokenizer.from_pretrained(path, **kwargs)` with a pad token (the eos token when it has none)."""
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
