"""Shared tiny fixtures: a character tokenizer, a 2-layer Llama teacher, a tiny DeepMime config, a toy dataset."""

import pytest
from datasets import Dataset

from open_r1_ext.core.tiny import char_tokenizer, micro_llama
from open_r1_ext.deepmime import DeepMimeConfig


@pytest.fixture(scope="session")
def tok():
    return char_tokenizer()


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
        output_dir=str(tmp_path),
        teacher_model_name_or_path="local-test-teacher",
        student_hidden_size=32,
        student_num_layers=2,
        student_num_heads=2,
        student_max_position_embeddings=64,
        memory_slots=8,
        memory_latent_dim=16,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=3,
        rl_warmup_steps=1,
        rl_ramp_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    kw.update(overrides)
    return DeepMimeConfig(**kw)
