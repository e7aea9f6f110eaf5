"""The local character tokenizer, the tiny model, and the cached warm start."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from open_r1_ext.core import tiny
from open_r1_ext.core.evaluation import evaluate_task


def test_char_tokenizer_round_trip(char_tok):
    text = "3 5 8 2 7=3,8,16>16"
    ids = char_tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert char_tok.decode(ids) == text
    assert char_tok.pad_token_id == 0 and char_tok.eos_token_id == 1


def test_saved_tokenizer_reloads_as_char_tokenizer(tmp_path, char_tok, tiny_model):
    # transformers 5 swaps in an architecture's own tokenizer class for some model types (qwen2 among them),
    # which would silently drop spaces; the built-in models must reload exactly.
    tiny_model.save_pretrained(tmp_path)
    char_tok.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "1 2 3=1,3,6>6"
    assert tok(text, add_special_tokens=False)["input_ids"] == char_tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(tok(text)["input_ids"]) == text


def test_default_model_size():
    tok = tiny.char_tokenizer()
    model = tiny.tiny_llama(len(tok), tiny.TinyModelSettings(), tok)
    n = sum(p.numel() for p in model.parameters())
    assert 0.9e6 < n < 1.2e6


def test_cache_key_tracks_settings():
    a = tiny.TinyModelSettings(task="addition")
    assert a.key() == tiny.TinyModelSettings(task="addition").key()
    assert a.key() != tiny.TinyModelSettings(task="addition", warm_start_steps=301).key()
    assert tiny.parse_builtin_name("builtin:addition") == "addition"
    assert tiny.parse_builtin_name("Qwen/Qwen2.5-0.5B") is None


def test_unknown_builtin_task_fails_early():
    with pytest.raises(ValueError, match="known tasks"):
        tiny.build_builtin(tiny.TinyModelSettings(task="chess"))


@pytest.mark.slow
def test_warm_start_lands_in_accuracy_band():
    """A short warm start solves some but not all held-out problems, so GRPO groups have variance."""
    settings = tiny.TinyModelSettings(task="running_sum", warm_start_steps=150)
    path = tiny.build_builtin(settings)
    meta = json.loads((path / "open_r1_ext_builtin.json").read_text())
    assert meta["settings"]["warm_start_steps"] == 150
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    acc = evaluate_task(model, tok, "running_sum", n=256, seed=0)["pass@1"]
    assert 0.1 <= acc <= 0.7, acc
    # the cache is hit the second time: same folder, no retraining (the weights file is untouched)
    mtime = (path / "model.safetensors").stat().st_mtime
    assert tiny.build_builtin(settings) == path
    assert (path / "model.safetensors").stat().st_mtime == mtime


def test_evaluate_task_on_perfect_and_random_models(char_tok, tiny_model):
    torch.manual_seed(0)
    acc = evaluate_task(tiny_model, char_tok, "addition", n=16, seed=0)
    assert acc["pass@1"] == 0.0  # a random model does not add


def test_char_tokenizer_keeps_every_newline_and_old_folders_are_repaired(tmp_path):
    from open_r1_ext.core.tiny import char_tokenizer, repair_char_tokenizer

    tok = char_tokenizer()
    ids = tok("def f():\n\n    return 1", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and ids.count(tok.convert_tokens_to_ids("\n")) == 2
    assert tok.decode(ids) == "def f():\n\n    return 1"
    # a model folder cached before the fix: a run of newlines was one <unk>
    tok.save_pretrained(tmp_path)
    f = tmp_path / "tokenizer.json"
    data = json.loads(f.read_text())
    data["pre_tokenizer"]["pattern"]["Regex"] = "."
    f.write_text(json.dumps(data))
    old = AutoTokenizer.from_pretrained(tmp_path)
    assert old.unk_token_id in old("a\n\nb", add_special_tokens=False)["input_ids"]
    assert repair_char_tokenizer(tmp_path) and not repair_char_tokenizer(tmp_path)  # once
    fixed = AutoTokenizer.from_pretrained(tmp_path)
    assert (
        fixed("a\n\nb", add_special_tokens=False)["input_ids"] == tok("a\n\nb", add_special_tokens=False)["input_ids"]
    )
