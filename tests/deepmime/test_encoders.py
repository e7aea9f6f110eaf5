"""Weight encoders: shapes, determinism under a seed, sensitivity to the input; memory initialisation."""

import pytest
import torch

from open_r1_ext.deepmime import (
    DeepMimeStudentConfig,
    DeepMimeStudentForCausalLM,
    HybridWeightEncoder,
    PCAWeightEncoder,
    SparseWeightEncoder,
    init_memory_from_teacher,
    weight_statistics,
)


def make(cls, seed):
    return {
        "sparse": lambda: SparseWeightEncoder(24, top_k=32, seed=seed),
        "pca": lambda: PCAWeightEncoder(24, num_blocks=4, block_size=16, rank=4, seed=seed),
        "hybrid": lambda: HybridWeightEncoder(24, embed_dim=16, top_k=32, num_blocks=4, block_size=16, seed=seed),
    }[cls]()


@pytest.fixture()
def weight():
    return torch.randn(40, 56, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["sparse", "pca", "hybrid"])
def test_shape_determinism_sensitivity(kind, weight):
    enc = make(kind, seed=3)
    out = enc(weight)
    assert out.shape == (24,) and torch.isfinite(out).all()
    assert torch.equal(out, make(kind, seed=3)(weight))  # same seed: same map, same blocks
    assert not torch.allclose(out, make(kind, seed=4)(weight))  # another seed: another map
    other = weight.clone()
    other[:20] *= 3.0  # changes top-k values, block spectra and statistics
    assert (enc(other) - out).abs().max() > 1e-4


def test_sparse_reads_only_the_top_k(weight):
    enc = SparseWeightEncoder(8, top_k=16, seed=0)
    small = weight.abs() < weight.abs().flatten().topk(16).values[-1]
    perturbed = weight + 0.01 * small * torch.sign(weight)  # move only entries outside the top-16
    assert torch.allclose(enc(weight), enc(perturbed), atol=1e-6)


def test_pca_features_are_singular_values(weight):
    enc = PCAWeightEncoder(8, num_blocks=2, block_size=16, rank=4, seed=0)
    feats = enc.features(weight).view(2, 5)
    assert (feats[:, :4] > 0).all() and (feats[:, :4].diff(dim=1) <= 1e-6).all()  # sorted, normalised
    assert (feats[:, :4] <= 1.0 + 1e-6).all()


def test_weight_statistics(weight):
    stats = weight_statistics(weight)
    assert stats.shape == (5,)
    assert torch.allclose(
        stats[:4],
        torch.stack([weight.mean(), weight.std(unbiased=False), weight.abs().max(), weight.abs().mean()]),
        atol=1e-6,
    )


def test_init_memory_from_teacher(teacher):
    cfg = DeepMimeStudentConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, memory_slots=8, memory_latent_dim=16
    )
    student = DeepMimeStudentForCausalLM(cfg)
    codes = init_memory_from_teacher(student, teacher, "t", seed=0)
    assert codes.shape == (8, 32)
    keys = student.memory.memory_keys.detach().clone()
    assert torch.allclose(keys.std(), torch.tensor(16**-0.5), rtol=1e-3)  # the random init's scale
    assert torch.equal(codes, init_memory_from_teacher(student, teacher, "t", seed=0))
    assert torch.equal(keys, student.memory.memory_keys)
    assert len({tuple(row.tolist()) for row in codes}) == 8  # every slot distinct
    assert student.config.memory_initialized_from == "t"
