"""Prepare the token-compression data (seed 001): tokenizer and train / validation / test splits of the plays.

    python launch/compression_prepare.py --config recipes/compression_data.yaml [--flag value ...]

Trains the BPE tokenizer on the training plays (or loads the tokenizer of `model_name_or_path` when it is a
pretrained masked LM) and writes the splits into `data_dir` (`open_r1_ext.compression.data.prepare_data`). The recipe is
read by the launch script's parser with `trainer_type: compression`, so one recipe serves every compression command.
"""

from __future__ import annotations

import json
import sys

import common  # noqa: F401  (first: puts src/ on sys.path, one thread per process)

from open_r1_ext.compression.data import prepare_data
from open_r1_ext.compression.trainer import pretrained_path
from open_r1_ext.grpo import parse_args


def parse(argv: list[str] | None = None):
    """`(script_args, CompressionConfig, model_args)` from a recipe and flags; `trainer_type` is compression unless
    the command line names another."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--trainer_type" or a.startswith("--trainer_type=") for a in argv):
        argv += ["--trainer_type", "compression"]
    return parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    _, args, model_args = parse(argv)
    out = prepare_data(
        args.data_dir,
        vocab_size=args.vocab_size,
        seq_len=args.seq_len,
        max_sequences=args.max_sequences,
        tokenizer_path=pretrained_path(model_args),
        texts_folder=args.texts_folder,
    )
    meta = json.loads((out / "meta.json").read_text())
    print(f"[prepare] {out}: vocab {meta['vocab_size']}, sequences {meta['num_sequences']}", flush=True)
    return meta


if __name__ == "__main__":
    main()
