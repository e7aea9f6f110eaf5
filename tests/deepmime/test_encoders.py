"""Weight encoders: shapes, determinism under a seed, sensitivity to the input; memory initialisation."""

import pytest
import torch

from open_r1_ext.deepmime import (
    DeepMimeStudentConfig,
    DeepMimeStudentForCausalLM,
    HybridWeightEncoder,
    PCAWeightEncoder,
    PrincipalDirectionEncoder,
    SparseWeightEncoder,
    effective_rank,
    encode_teacher,
    init_memory_from_teacher,
    matrix_descriptor,
    matrix_type_accuracy,
    weight_statistics,
)


def make(cls, seed):
    return {
        "sparse": lambda: SparseWeightEncoder(24, top_k=32, seed=seed),
        "pca": lambda: PCAWeightEncoder(24, num_blocks=4, block_size=16, rank=4, seed=seed),
        "hybrid": lambda: HybridWeightEncoder(24, embed_dim=16, top_k=32, num_blocks=4, block_size=16, seed=seed),
        "principal": lambda: PrincipalDirectionEncoder(6, rank=2, seed=seed),
    }[cls]()


@pytest.fixture()
def weight():
    return torch.randn(40, 56, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["sparse", "pca", "hybrid", "principal"])
def test_shape_determinism_sensitivity(kind, weight):
    enc = make(kind, seed=3)
    out = enc(weight).flatten()
    assert out.shape == (24,) and torch.isfinite(out).all()
    assert torch.equal(out, make(kind, seed=3)(weight).flatten())  # same seed: same map, same blocks
    assert not torch.allclose(out, make(kind, seed=4)(weight).flatten())  # another seed: another map
    other = weight.clone()
    other[:20] *= 3.0  # changes top-k values, block spectra and statistics
    assert (enc(other).flatten() - out).abs().max() > 1e-4


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


def test_principal_codes_keep_the_directions():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(40, generator=g), torch.randn(56, generator=g)
    u, v = u / u.norm(), v / v.norm()
    enc = PrincipalDirectionEncoder(16, rank=1, seed=0)
    code = enc(3.0 * torch.outer(u, v))[0]  # rank 1: one singular pair
    key, value = code[:16], code[16:]
    cos = torch.nn.functional.cosine_similarity
    assert abs(cos(key, v @ enc.projection(56), dim=0)) > 0.999
    assert abs(cos(value, u @ enc.projection(40), dim=0)) > 0.999
    assert key.abs().argmax() == key.argmax()  # sign fixed: largest key entry positive


def test_codes_of_different_matrices_differ(teacher):
    """Two different teacher matrices get different codes (the seed's hybrid codes: mean cosine 0.97)."""
    codes = encode_teacher(teacher, 28, 16, seed=0)  # 2 layers x 7 matrices: 2 slots each
    first, second = codes[0], codes[1]  # two different matrices (slot s takes matrix s % 14)
    assert abs(torch.nn.functional.cosine_similarity(first, second, dim=0)) < 0.5
    z = torch.nn.functional.normalize(codes, dim=-1)
    off_diagonal = (z @ z.t())[~torch.eye(28, dtype=torch.bool)]
    assert off_diagonal.abs().mean() < 0.3
    assert effective_rank(codes[:, :16]) > 8  # the seed's teacher-initialised keys: 3.3 of 16+


def test_matrix_type_accuracy_tells_families_apart():
    g = torch.Generator().manual_seed(0)
    families = {
        "low_rank": lambda: torch.randn(32, 2, generator=g) @ torch.randn(2, 32, generator=g),
        "heavy_rows": lambda: torch.randn(32, 32, generator=g) * torch.linspace(0.1, 3, 32).unsqueeze(1),
        "gaussian": lambda: torch.randn(32, 32, generator=g),
    }
    mats, labels = [], []
    for name, make_one in families.items():
        for _ in range(4):
            mats.append(matrix_descriptor(make_one()))
            labels.append(name)
    codes = torch.stack(mats)
    assert matrix_type_accuracy(codes, labels) == 1.0
    shuffled = [labels[i] for i in torch.randperm(12, generator=g).tolist()]
    assert matrix_type_accuracy(codes, shuffled) < 0.75
    with pytest.raises(ValueError, match="one label each"):
        matrix_type_accuracy(codes, labels[:3])


def test_init_memory_from_teacher(teacher):
    cfg = DeepMimeStudentConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, memory_slots=8, memory_latent_dim=16
    )
    student = DeepMimeStudentForCausalLM(cfg)
    codes = init_memory_from_teacher(student, teacher, "t", seed=0)
    assert codes.shape == (8, 32)
    keys = student.memory.memory_keys.detach().clone()
    assert torch.allclose(keys.std(), torch.tensor(1.0), rtol=1e-3)  # the random init's scale
    assert torch.equal(codes, init_memory_from_teacher(student, teacher, "t", seed=0))
    assert torch.equal(keys, student.memory.memory_keys)
    assert len({tuple(row.tolist()) for row in codes}) == 8  # every slot distinct
    assert student.config.memory_initialized_from == "t"
