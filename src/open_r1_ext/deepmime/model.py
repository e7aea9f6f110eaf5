"""The DeepMime student: a Llama backbone plus a differentiable key-value memory read through a top-2 mixture of
experts, registered with transformers' Auto classes as `model_type: deepmime_student`.

Seed: `../shared/seeds/000_2452fced7af1b1cb.txt` (DeepMime). Layout of one forward, shapes for a batch `(B, T)`:

    h = LlamaModel(input_ids).last_hidden_state            (B, T, H)   final RMSNorm included
    q = W_q h                                               (B, T, L)   L = memory_latent_dim (128)
    a = softmax(tau * cos(q, K))                            (B, T, S)   K: (S, L) memory keys, S = memory_slots (64)
    r = a V                                                 (B, T, L)   V: (S, L) memory values
    g = softmax(W_r h), top-2 of E, renormalised            (B, T, E)   E = num_experts (4), 2 non-zero per token
    h' = norm(h + sum_e g_e * expert_e(r))                  (B, T, H)   expert_e: L -> 2L -> H (GELU MLP)
    logits = lm_head(h')

**Why the read is cosine attention with a learned scale** (issue 17). With the seed's `q K^T / sqrt(L)` and
transformers' 0.02-std init, every slot logit was ~0, the attention over 64 slots stayed uniform through training
(entropy 0.998 of its maximum), every token read the same mean value, and the memory acted as one constant bias
(removing it moved validation CE by 0.1 %). Here queries and keys are L2-normalised (so no slot wins by norm alone
and the logit range is fixed) and multiplied by a learned `tau = exp(log_scale)`, initialised to
`memory_scale_init * sqrt(L)`: over random keys `cos(q, k)` has std `1/sqrt(L)`, so the logits start with std
`memory_scale_init` (2.0: ~0.66 of the maximal entropy at 64 slots) whatever L is, and training can sharpen or
flatten the read. Values start at unit scale and the experts with fan-in scaled weights, so the memory's output is
of the order of `h` from the first step and its parameters get gradients comparable to the backbone's (the seed's
0.02-std values and experts gave a read ~1e-4 of `h` and slot-key gradients ~1e-7).

The forward also returns two diagnostics as detached scalars over non-padding tokens: `memory_attention_entropy`
(mean per-token entropy of `a` over `log S`: 1.0 is a uniform read, 0 a single slot) and `router_entropy` (mean
per-token entropy of the router's softmax over `log E`). `memory_ablated(model)` is a context manager under which
the memory/MoE output is removed (`h' = norm(h)`), for the ablation the trainer logs at evaluation.

The memory is position-wise (every token reads the same slots), so it needs no cache of its own: generation with
the backbone's KV cache is unchanged. The experts are computed densely and combined with the sparse gate (at four
small experts the gather/scatter of a sparse dispatch costs more than it saves); the gate still puts weight on
exactly `num_experts_per_tok` experts per token. The load-balancing loss is Mixtral's (`load_balancing_loss_func`,
`E * sum_e f_e * P_e` over non-padding tokens, `num_experts_per_tok` at perfect balance and larger when routing
collapses); it is returned as `aux_loss`, and ST-MoE's router z-loss (`mean_t logsumexp(router logits)^2`, which
keeps router logits from drifting large) as `router_z_loss`; the trainer adds each with its own weight. The config deliberately has no
`output_router_logits` attribute, so TRL's GRPO loss does not add a second copy.

`DeepMimeStudentForCausalLM.model` is a `DeepMimeStudentModel` whose output's `last_hidden_state` is `h'`, which
is what TRL's fused LM head (`add_fused_lm_head`: `model.base_model(...).last_hidden_state` and
`get_output_embeddings()`) needs. With `teacher_hidden_size` set, the model also owns `teacher_proj`, the linear map
`H -> H_teacher` for the hidden-state distillation loss, so it trains and checkpoints with the student.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    GenerationMixin,
    LlamaConfig,
    LlamaModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func


class DeepMimeStudentConfig(PretrainedConfig):
    """Sizes of the DeepMime student. Defaults are the seed's table (hidden 1024, 6 layers, 4 heads, 64 memory
    slots, latent 128, 4 experts with 2 active); `intermediate_size` defaults to `8/3 * hidden` rounded to 64."""

    model_type = "deepmime_student"

    def __init__(
        self,
        vocab_size: int = 32256,
        hidden_size: int = 1024,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        max_position_embeddings: int = 2048,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        initializer_range: float = 0.02,
        memory_slots: int = 64,
        memory_latent_dim: int = 128,
        num_experts: int = 4,
        num_experts_per_tok: int = 2,
        memory_scale_init: float = 2.0,
        teacher_hidden_size: int | None = None,
        memory_initialized_from: str | None = None,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        if intermediate_size is None:
            intermediate_size = max(64, int(round(hidden_size * 8 / 3 / 64)) * 64)
        for name, value in (
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
            ("num_attention_heads", num_attention_heads),
            ("memory_slots", memory_slots),
            ("memory_latent_dim", memory_latent_dim),
            ("num_experts", num_experts),
            ("memory_scale_init", memory_scale_init),
        ):
            if value < 1 and name != "memory_scale_init":
                raise ValueError(f"{name} must be >= 1, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
            )
        if not 1 <= num_experts_per_tok <= num_experts:
            raise ValueError(
                f"num_experts_per_tok must be in [1, num_experts={num_experts}], got {num_experts_per_tok!r}"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        self.memory_slots = memory_slots
        self.memory_latent_dim = memory_latent_dim
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        # Initial std of the slot logits over random keys (see the module docstring): tau starts at this * sqrt(L)
        self.memory_scale_init = memory_scale_init
        self.teacher_hidden_size = teacher_hidden_size
        # Which teacher's weights initialised the memory (None: random init); recorded so that it is done once.
        self.memory_initialized_from = memory_initialized_from
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def backbone_config(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_attention_heads,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            initializer_range=self.initializer_range,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            tie_word_embeddings=False,
        )


@dataclass
class MemoryReadout:
    """What one memory/MoE pass returns: `hidden` `(B, T, H)`, `router_logits` `(B*T, E)`, `gates` `(B, T, E)`
    (exactly `num_experts_per_tok` non-zero per token), `attention` over slots `(B, T, S)`."""

    hidden: torch.Tensor
    router_logits: torch.Tensor
    gates: torch.Tensor
    attention: torch.Tensor


def normalised_entropy(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over tokens of `H(p) / log K` for distributions `probs` `(..., K)`, over `mask` `(...)` when given
    (1.0: uniform, 0: one-hot). Detached, float32 scalar."""
    p = probs.detach().float()
    h = -(p * p.clamp(min=1e-12).log()).sum(-1) / math.log(max(p.size(-1), 2))
    if mask is None:
        return h.mean()
    m = mask.to(h.dtype)
    return (h * m).sum() / m.sum().clamp(min=1.0)


class MoEMemory(nn.Module):
    """Key-value memory read by scaled cosine attention, its readout routed through a top-k mixture of experts (see
    the module docstring for the equations and for why the read is normalised)."""

    def __init__(self, config: DeepMimeStudentConfig):
        super().__init__()
        h, latent, e = config.hidden_size, config.memory_latent_dim, config.num_experts
        self.top_k = config.num_experts_per_tok
        self.memory_keys = nn.Parameter(torch.empty(config.memory_slots, latent))
        self.memory_values = nn.Parameter(torch.empty(config.memory_slots, latent))
        self.log_scale = nn.Parameter(torch.empty(()))
        self.query = nn.Linear(h, latent, bias=False)
        self.router = nn.Linear(h, e, bias=False)
        self.experts_in = nn.ModuleList(nn.Linear(latent, 2 * latent) for _ in range(e))
        self.experts_out = nn.ModuleList(nn.Linear(2 * latent, h) for _ in range(e))
        self.norm = LlamaRMSNorm(h, eps=config.rms_norm_eps)
        self.ablated = False  # set by `memory_ablated`: the block then adds nothing to `h`
        self.reset_parameters(config)  # a standalone block is usable; in a model, `_init_weights` repeats it

    @torch.no_grad()
    def reset_parameters(self, config: DeepMimeStudentConfig):
        """Unit-scale keys and values, fan-in scaled query and experts, tau = memory_scale_init * sqrt(L)."""
        latent = self.memory_keys.size(1)
        self.memory_keys.normal_(0.0, 1.0)
        self.memory_values.normal_(0.0, 1.0)
        self.log_scale.fill_(math.log(config.memory_scale_init * math.sqrt(latent)))
        self.query.weight.normal_(0.0, config.hidden_size**-0.5)
        for layer in (*self.experts_in, *self.experts_out):
            layer.weight.normal_(0.0, layer.in_features**-0.5)
            layer.bias.zero_()

    def route(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Router logits `(B, T, E)` and top-k gates `(B, T, E)`: softmax over all experts, top-k kept and
        renormalised (Mixtral's routing), zeros elsewhere."""
        logits = self.router(hidden)
        probs = logits.float().softmax(dim=-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        top = top / top.sum(dim=-1, keepdim=True)
        gates = torch.zeros_like(probs).scatter(-1, idx, top).to(hidden.dtype)
        return logits, gates

    def attend(self, hidden: torch.Tensor) -> torch.Tensor:
        """Attention over the slots `(B, T, S)`: `softmax(tau * cos(W_q h, K))`."""
        q = F.normalize(self.query(hidden), dim=-1)
        k = F.normalize(self.memory_keys.to(q.dtype), dim=-1)
        return (self.log_scale.exp().to(q.dtype) * q @ k.t()).softmax(dim=-1)

    def forward(self, hidden: torch.Tensor) -> MemoryReadout:
        attention = self.attend(hidden)
        read = attention @ self.memory_values.to(hidden.dtype)
        logits, gates = self.route(hidden)
        mixed = torch.zeros_like(hidden)
        if not self.ablated:
            for e, (w_in, w_out) in enumerate(zip(self.experts_in, self.experts_out)):
                mixed = mixed + gates[..., e : e + 1] * w_out(F.gelu(w_in(read)))
        out = self.norm(hidden + mixed)
        return MemoryReadout(out, logits.reshape(-1, logits.size(-1)), gates, attention)


@contextmanager
def memory_ablated(model):
    """Within this block `model`'s memory/MoE block adds nothing (`h' = norm(h)`): the ablation behind
    `deepmime/memory_ablation_ce_increase`. `model` is a `DeepMimeStudentForCausalLM` or `DeepMimeStudentModel`."""
    memory = model.memory if not isinstance(model, MoEMemory) else model
    previous, memory.ablated = memory.ablated, True
    try:
        yield model
    finally:
        memory.ablated = previous


@dataclass
class DeepMimeModelOutput(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` plus `router_logits` `(B*T, E)` and the balance loss `aux_loss` (scalar)."""

    router_logits: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    router_z_loss: torch.Tensor | None = None
    memory_attention_entropy: torch.Tensor | None = None
    router_entropy: torch.Tensor | None = None


@dataclass
class DeepMimeCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the balance loss `aux_loss`, the router z-loss `router_z_loss`, the final hidden
    state `last_hidden_state` and the two read diagnostics (see the module docstring)."""

    aux_loss: torch.Tensor | None = None
    router_z_loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    memory_attention_entropy: torch.Tensor | None = None
    router_entropy: torch.Tensor | None = None


class DeepMimeStudentPreTrainedModel(PreTrainedModel):
    config_class = DeepMimeStudentConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)  # Linear, Embedding, RMSNorm, rotary buffers (transformers' generic init)
        if isinstance(module, MoEMemory):
            module.reset_parameters(self.config)


class DeepMimeStudentModel(DeepMimeStudentPreTrainedModel):
    """The backbone (a `LlamaModel`) followed by the memory/MoE block; returns `DeepMimeModelOutput`."""

    def __init__(self, config: DeepMimeStudentConfig):
        super().__init__(config)
        self.backbone = LlamaModel(config.backbone_config())
        self.memory = MoEMemory(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embed_tokens

    def set_input_embeddings(self, value):
        self.backbone.embed_tokens = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        output_hidden_states=None,
        **kwargs,
    ) -> DeepMimeModelOutput:
        kwargs.pop("output_router_logits", None)  # router logits are always returned
        kwargs.pop("return_dict", None)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        read = self.memory(out.last_hidden_state)
        # Mixtral's loss takes a 2-D mask (B, T) and router logits of all tokens (B*T, E); the mask only lines up
        # when both cover the same tokens (not during cached decoding, where the loss is not needed anyway).
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
        if mask is not None and mask.shape != read.hidden.shape[:2]:
            mask = None
        aux = load_balancing_loss_func(
            (read.router_logits,), self.config.num_experts, self.config.num_experts_per_tok, mask
        )
        z = read.router_logits.float().logsumexp(dim=-1) ** 2  # (B*T,)
        flat = mask.reshape(-1).float() if mask is not None else torch.ones_like(z)
        z_loss = (z * flat).sum() / flat.sum().clamp(min=1.0)
        hidden_states = out.hidden_states + (read.hidden,) if out.hidden_states is not None else None
        return DeepMimeModelOutput(
            last_hidden_state=read.hidden,
            past_key_values=out.past_key_values,
            hidden_states=hidden_states,
            attentions=out.attentions,
            router_logits=read.router_logits,
            aux_loss=aux,
            router_z_loss=z_loss,
            memory_attention_entropy=normalised_entropy(read.attention, mask),
            router_entropy=normalised_entropy(read.router_logits.view(*read.gates.shape).softmax(-1), mask),
        )


class DeepMimeStudentForCausalLM(DeepMimeStudentPreTrainedModel, GenerationMixin):
    """Causal LM head over `DeepMimeStudentModel`; `loss` is the token CE only (the balance loss is `aux_loss`)."""

    def __init__(self, config: DeepMimeStudentConfig):
        super().__init__(config)
        self.model = DeepMimeStudentModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.teacher_proj = (
            nn.Linear(config.hidden_size, config.teacher_hidden_size, bias=False)
            if config.teacher_hidden_size
            else None
        )
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    @property
    def memory(self) -> MoEMemory:
        return self.model.memory

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> DeepMimeCausalLMOutput:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size)
        return DeepMimeCausalLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            aux_loss=out.aux_loss,
            router_z_loss=out.router_z_loss,
            last_hidden_state=hidden,
            memory_attention_entropy=out.memory_attention_entropy,
            router_entropy=out.router_entropy,
        )


AutoConfig.register(DeepMimeStudentConfig.model_type, DeepMimeStudentConfig, exist_ok=True)
AutoModel.register(DeepMimeStudentConfig, DeepMimeStudentModel, exist_ok=True)
AutoModelForCausalLM.register(DeepMimeStudentConfig, DeepMimeStudentForCausalLM, exist_ok=True)
