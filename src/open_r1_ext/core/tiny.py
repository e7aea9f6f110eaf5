"""Offline tiny models: a local character tokenizer, a small Llama built from a config, and a cached warm start.

`builtin:<task>` in a recipe's `model_name_or_path` resolves here: a ~1M-parameter Llama trained for a fixed
number of supervised steps on the task's reference completions (loss on completion tokens only), so that it solves
some but not all held-out problems and GRPO sees variance inside its groups. The result is saved with
`save_pretrained` under a cache folder keyed by every setting that shapes it, so a second run (or a second
process) loads it in a second. Nothing here touches a model or dataset hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import string
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from . import tasks as tasks_mod
from .tasks import BUILTIN_PREFIX, parse_builtin_name  # noqa: F401  (re-exported for `builtin:` model names)


logger = logging.getLogger(__name__)

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
# Bump when the warm-start recipe changes in a way the settings below do not capture.
_CACHE_VERSION = 2  # 2: held-out problems are excluded from warm-start data (tasks.is_test_problem)


def cache_root() -> Path:
    return Path(os.environ.get("OPEN_R1_EXT_CACHE", Path.home() / ".cache" / "open_r1_ext"))


# Every character, newline included: with "." a run of newlines fell through the split as one piece and became <unk>.
CHAR_PATTERN = "[\\s\\S]"


def repair_char_tokenizer(folder: Path) -> bool:
    """Give a saved character tokenizer built before the newline fix (pre-tokenizer pattern ".") `CHAR_PATTERN`;
    the vocabulary is unchanged, so a cached model stays valid. Returns whether the file was rewritten."""
    f = Path(folder) / "tokenizer.json"
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") != "Split" or (pre.get("pattern") or {}).get("Regex") != ".":
        return False
    pre["pattern"]["Regex"] = CHAR_PATTERN
    fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=".tokenizer.", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, f)
    return True


def char_tokenizer(alphabet: str | None = None) -> PreTrainedTokenizerFast:
    """One token per character (printable ASCII and newline by default), with `<pad>`, `<eos>` and `<unk>`."""
    alphabet = alphabet if alphabet is not None else string.printable[:95] + "\n"
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *dict.fromkeys(alphabet)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(CHAR_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=512, padding_side="left"
    )


@dataclass
class TinyModelSettings:
    """Every setting that shapes a built-in model; the cache key is a hash of these."""

    task: str = "addition"
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    warm_start_steps: int = 300
    warm_start_lr: float = 2e-3
    warm_start_batch_size: int = 128
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": _CACHE_VERSION}, sort_keys=True)
        return f"{self.task}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def tiny_llama(vocab_size: int, settings: TinyModelSettings, tokenizer=None) -> LlamaForCausalLM:
    # Llama rather than Qwen2: transformers 5 forces Qwen2's BPE tokenizer class on any folder whose config says
    # qwen2, which would silently replace our character tokenizer; for llama it honours tokenizer_config.json.
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_attention_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id if tokenizer is not None else 0,
        eos_token_id=tokenizer.eos_token_id if tokenizer is not None else 1,
        bos_token_id=None,
    )
    return LlamaForCausalLM(cfg)


def micro_llama(
    tokenizer, hidden_size: int = 32, num_hidden_layers: int = 2, num_attention_heads: int = 2, seed: int | None = 0
) -> LlamaForCausalLM:
    """A Llama of a few tens of thousands of parameters over `tokenizer`, for tests and smoke runs (random weights)."""
    if seed is not None:
        torch.manual_seed(seed)
    settings = TinyModelSettings(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=2 * hidden_size,
    )
    return tiny_llama(len(tokenizer), settings, tokenizer)


def sft_batch(tokenizer, rows: list[dict]) -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion+eos with labels on completion tokens only."""
    seqs, labels = [], []
    for r in rows:
        p = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        c = tokenizer(r["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(lb)] = torch.tensor(lb)
        att[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


def warm_start(model, tokenizer, task: str, steps: int, lr: float, batch_size: int, seed: int, log_every: int = 50):
    """Supervised warm start on the task's reference completions; returns the loss curve."""
    torch.manual_seed(seed)
    rows = tasks_mod.generate(task, steps * batch_size, seed=seed, split="warmup")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    model.train()
    losses, t0 = [], time.perf_counter()
    for step in range(steps):
        batch = sft_batch(tokenizer, rows[step * batch_size : (step + 1) * batch_size])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            logger.info(
                "warm start %s: step %d/%d loss %.4f (%.0fs)",
                task,
                step + 1,
                steps,
                loss.item(),
                time.perf_counter() - t0,
            )
            print(
                f"[warm start] {task} step {step + 1}/{steps} loss {loss.item():.4f} "
                f"({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    model.eval()
    return losses


def build_builtin(settings: TinyModelSettings, force: bool = False) -> Path:
    """Return the cached folder of the built-in model for `settings`, training and saving it on a miss.

    The folder is written to a temporary name and renamed, so a crash never leaves a half-written cache entry
    and concurrent processes at worst train twice (launchers call this under `main_process_first`).
    """
    tasks_mod.get_task(settings.task)  # fail early on an unknown task
    path = cache_root() / "builtin" / settings.key()
    if path.exists() and not force:
        repair_char_tokenizer(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = char_tokenizer()
    torch.manual_seed(settings.seed)
    model = tiny_llama(len(tokenizer), settings, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"[warm start] building builtin:{settings.task} ({n_params / 1e6:.2f}M params, "
        f"{settings.warm_start_steps} steps) -> {path}",
        flush=True,
    )
    losses = warm_start(
        model,
        tokenizer,
        settings.task,
        settings.warm_start_steps,
        settings.warm_start_lr,
        settings.warm_start_batch_size,
        settings.seed,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "open_r1_ext_builtin.json").write_text(
        json.dumps({"settings": asdict(settings), "final_loss": losses[-1] if losses else None}, indent=2)
    )
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path
