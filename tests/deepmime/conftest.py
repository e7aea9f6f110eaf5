"""Shared tiny fixtures: a character tokenizer, a 2-layer Llama teacher, a tiny DeepMime config, a toy dataset."""

import pytest
from datasets import Dataset

from open_r1_ext.core.tiny import micro_llama
from open_r1_ext.deepmime import DeepMimeConfig
from tiny_helpers import tiny_args


@pytest.fixture(scope="session")
def tok(char_tok):
    return char_tok


@pytest.fixture()
def teacher(tok):
    return micro_llama(tok, hidden_size=48)


@pytest.fixture(scope="session")
def dataset():
    rows = []
    for i in range(64):
        a, b = i % 10, (i * 7) % 10
        rows.append({"prompt": f"{a} {b}=", "completion": f"{a},{a + b}>{a + b}", "answer": str(a + b)})
    return Dataset.from_list(rows)


def tiny_config(tmp_path, **overrides) -> DeepMimeConfig:
    kw = dict(
        teacher_model_name_or_path="local-test-teacher",
        student_hidden_size=32,
        student_num_layers=2,
        student_num_heads=2,
        student_max_position_embeddings=64,
        memory_slots=8,
        memory_latent_dim=16,
        max_steps=3,
        rl_warmup_steps=1,
        rl_ramp_steps=1,
        learning_rate=1e-3,
        kd_loss_weight=1.0,
        seed=0,
    )
    kw.update(overrides)
    return tiny_args(DeepMimeConfig, tmp_path, **kw)
