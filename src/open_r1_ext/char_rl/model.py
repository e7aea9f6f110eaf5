"""GPT-2 character models built from `GPT2Config` with random weights (nothing is downloaded).

| preset      | layers | heads | width | params at V=65 | use                                        |
|-------------|--------|-------|-------|----------------|--------------------------------------------|
| `gpt2-20m`  | 6      | 8     | 512   | ~19 M          | the seed's default, GPU                    |
| `cpu-small` | 4      | 4     | 128   | ~0.8 M         | nanoGPT's CPU setting; benchmark, CPU full |
| `cpu-tiny`  | 2      | 2     | 64    | ~0.1 M         | quick recipe, tests                        |
"""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel


PRESETS: dict[str, dict[str, int]] = {
    "gpt2-20m": {"n_layer": 6, "n_head": 8, "n_embd": 512},
    "cpu-small": {"n_layer": 4, "n_head": 4, "n_embd": 128},
    "cpu-tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64},
}


def build_char_gpt2(
    vocab_size: int,
    block_size: int,
    preset: str = "gpt2-20m",
    dropout: float = 0.0,
    n_layer: int | None = None,
    n_head: int | None = None,
    n_embd: int | None = None,
) -> GPT2LMHeadModel:
    """A randomly initialised `GPT2LMHeadModel`; explicit `n_layer`/`n_head`/`n_embd` override the preset."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown model preset {preset!r}; known presets: {sorted(PRESETS)}")
    shape = dict(PRESETS[preset])
    for k, v in (("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
        if v is not None:
            shape[k] = v
    if shape["n_embd"] % shape["n_head"]:
        raise ValueError(f"n_embd={shape['n_embd']} is not divisible by n_head={shape['n_head']}")
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=block_size,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        use_cache=False,
        **shape,
    )
    return GPT2LMHeadModel(config)
