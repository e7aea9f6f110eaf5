"""The memory is used (issue 17): a peaked, token-dependent read; its removal changes the output and, once trained,
hurts; slot keys get real gradients; the router losses and entropies are what their definitions say."""

import math

import pytest
import torch

from open_r1_ext.core.tiny import sft_batch
from open_r1_ext.deepmime import (
    DeepMimeStudentConfig,
    DeepMimeStudentForCausalLM,
    memory_ablated,
    memory_diagnostics,
    normalised_entropy,
)


def student(tok, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = DeepMimeStudentConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        memory_slots=16,
        memory_latent_dim=16,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **kw,
    )
    return DeepMimeStudentForCausalLM(cfg)


def rows(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        a, b = torch.randint(0, 10, (2,), generator=g).tolist()
        out.append({"prompt": f"{a}+{b}=", "completion": f">{a + b}"})
    return out


@pytest.fixture(scope="module")
def trained(char_tok):
    """A 1-layer student trained 120 CE steps on one-digit sums (~2 s). Over seeds 0-3 its memory removal costs
    15-48 % CE (the seed's memory: 0.1 %)."""
    model = student(char_tok)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = rows(120 * 32)
    model.train()
    for step in range(120):
        loss = model(**sft_batch(char_tok, data[step * 32 : (step + 1) * 32])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def test_normalised_entropy():
    uniform = torch.full((2, 3, 8), 1 / 8)
    one_hot = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3]]), 8).float()
    assert normalised_entropy(uniform).item() == pytest.approx(1.0)
    assert normalised_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    mask = torch.tensor([[1, 0, 0], [0, 0, 0]])
    mixed = torch.cat([one_hot, uniform[:1]])  # the only unmasked token is one-hot
    assert normalised_entropy(mixed, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_read_is_peaked_and_token_dependent_at_init(char_tok):
    model = student(char_tok).eval()
    ids = torch.randint(3, len(char_tok), (4, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = model.model.backbone(input_ids=ids).last_hidden_state
        attention = model.memory.attend(hidden)  # (B, T, S)
    assert normalised_entropy(attention).item() < 0.85  # the seed's read: 0.998
    reads = (attention @ model.memory.memory_values).reshape(-1, 16)
    cos = torch.nn.functional.cosine_similarity(reads, reads.mean(0, keepdim=True), dim=-1)
    assert cos.mean() < 0.9  # the seed's reads: cosine 0.9996 with the mean read (one constant bias)


def test_slot_keys_get_gradients_comparable_to_the_backbone(char_tok):
    model = student(char_tok)
    model(**sft_batch(char_tok, rows(16))).loss.backward()
    key_grad = model.memory.memory_keys.grad.norm().item()
    backbone_grad = model.model.backbone.layers[0].mlp.down_proj.weight.grad.norm().item()
    assert key_grad > 1e-2 * backbone_grad  # the seed's memory: ~1e-7 against 1-10


def test_ablation_changes_the_output_and_restores(char_tok):
    model = student(char_tok).eval()
    batch = sft_batch(char_tok, rows(8))
    with torch.no_grad():
        full = model(**batch).logits
        with memory_ablated(model) as m:
            assert m.memory.ablated
            ablated = model(**batch).logits
        again = model(**batch).logits
    assert not model.memory.ablated and torch.equal(full, again)
    assert (full - ablated).abs().mean() > 0.1 * full.abs().mean()


def test_trained_memory_is_peaked_and_its_removal_hurts(trained, char_tok):
    d = memory_diagnostics(trained, char_tok, rows(128, seed=7))
    assert d["memory_attention_entropy"] < 0.8
    assert d["memory_ablation_ce_increase"] > 0.05  # removing the memory costs > 5 % CE once it has been trained
    assert d["val_ce_memory_ablated"] > d["val_ce"] and not trained.memory.ablated


def test_router_z_loss_and_entropy(char_tok):
    model = student(char_tok)
    ids = torch.randint(3, len(char_tok), (2, 5))
    with torch.no_grad():
        model.memory.router.weight.zero_()  # all-zero logits: uniform routing
        out = model(input_ids=ids)
    assert out.router_z_loss.item() == pytest.approx(math.log(4) ** 2, rel=1e-5)  # logsumexp(0,0,0,0)^2
    assert out.router_entropy.item() == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        model.memory.router.weight.normal_(0, 5.0)
        peaked = model(input_ids=ids)
    assert peaked.router_entropy < 0.9 and peaked.router_z_loss > out.router_z_loss


def test_scale_is_learned_and_sets_the_initial_sharpness(char_tok):
    flat = student(char_tok, memory_scale_init=0.05).eval()
    sharp = student(char_tok, memory_scale_init=4.0).eval()
    assert sharp.memory.log_scale.exp().item() == pytest.approx(4.0 * 16**0.5, rel=1e-5)
    assert flat.memory.log_scale.requires_grad
    ids = torch.randint(3, len(char_tok), (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e_flat, e_sharp = flat(input_ids=ids).memory_attention_entropy, sharp(input_ids=ids).memory_attention_entropy
    assert e_flat > 0.99 and e_sharp < 0.6
    with pytest.raises(ValueError, match="memory_scale_init"):
        DeepMimeStudentConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, memory_scale_init=0.0)
