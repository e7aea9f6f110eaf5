"""The student: top-2 routing, balance loss, Auto-class round trip, generation, TRL's fused LM head."""

import torch
from transformers import AutoConfig, AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from open_r1_ext.deepmime import DeepMimeStudentConfig, DeepMimeStudentForCausalLM, MoEMemory


def tiny(tok, **kw):
    torch.manual_seed(0)
    cfg = DeepMimeStudentConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        memory_slots=8,
        memory_latent_dim=16,
        teacher_hidden_size=24,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **kw,
    )
    return DeepMimeStudentForCausalLM(cfg)


def test_defaults_are_the_seeds():
    cfg = DeepMimeStudentConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (1024, 6, 4)
    assert (cfg.memory_slots, cfg.memory_latent_dim, cfg.num_experts, cfg.num_experts_per_tok) == (64, 128, 4, 2)


def test_exactly_two_of_four_experts_per_token():
    memory = MoEMemory(
        DeepMimeStudentConfig(
            vocab_size=10, hidden_size=32, num_attention_heads=2, memory_slots=8, memory_latent_dim=16
        )
    )
    _, gates = memory.route(torch.randn(3, 7, 32))
    assert gates.shape == (3, 7, 4)
    assert ((gates > 0).sum(-1) == 2).all()
    assert torch.allclose(gates.sum(-1), torch.ones(3, 7))
    out = memory(torch.randn(3, 7, 32))
    assert out.hidden.shape == (3, 7, 32) and torch.allclose(out.attention.sum(-1), torch.ones(3, 7))


class FixedRouter(torch.nn.Module):
    """Router logits that depend only on the token position: token t prefers experts `pairs[t % len(pairs)]`."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs

    def forward(self, hidden):
        logits = torch.zeros(*hidden.shape[:-1], 4)
        for t in range(hidden.size(1)):
            logits[:, t, list(self.pairs[t % len(self.pairs)])] = 4.0
        return logits


def test_balance_loss_positive_and_lower_when_balanced(tok):
    model = tiny(tok)
    ids = torch.randint(3, len(tok), (4, 12))
    with torch.no_grad():
        model.memory.router = FixedRouter([(0, 1)])  # every token to experts 0 and 1
        collapsed = model(input_ids=ids).aux_loss
        model.memory.router = FixedRouter([(0, 1), (2, 3)])  # half the tokens each way
        balanced = model(input_ids=ids).aux_loss
        gates = model.memory.route(torch.zeros(1, 2, 32))[1]
    assert ((gates > 0).sum(-1) == 2).all()
    assert balanced > 0 and collapsed > 0
    # Mixtral's loss E * sum_e f_e P_e: ~2 (= top-k) at balance, ~4 when two experts take every token
    assert collapsed > balanced + 1.5
    assert abs(balanced.item() - 2.0) < 0.1


def test_save_load_round_trip_through_auto_classes(tok, tmp_path):
    model = tiny(tok, memory_initialized_from="teacher-x")
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "deepmime_student"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is DeepMimeStudentForCausalLM
    assert loaded.config.memory_initialized_from == "teacher-x"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    ids = torch.randint(3, len(tok), (2, 9))
    assert torch.allclose(model(input_ids=ids).logits, loaded(input_ids=ids).logits)


def test_generate_and_trl_fused_head(tok):
    model = tiny(tok)
    batch = tok(["12+3=", "4="], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, batch["input_ids"].size(1) + 5)
    # Cached greedy decoding equals uncached argmax: the memory is position-wise and needs no cache of its own
    mask = torch.cat([batch["attention_mask"], torch.ones(2, 4, dtype=torch.long)], dim=1)
    full = model(input_ids=out[:, :-1], attention_mask=mask).logits[:, -1].argmax(-1)
    assert torch.equal(full, out[:, -1])
    ref = model(**batch).logits[:, :-1].log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    add_fused_lm_head(model)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    fused = model(**batch, labels=labels, fused_lm_head=True).log_probs
    mask = labels[:, 1:] != -100
    assert torch.allclose(fused[mask], ref[mask], atol=1e-4)
