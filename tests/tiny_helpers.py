"""Settings and builders shared by the trainer tests: a few-step CPU run of a tiny model on a character tokenizer.

from tiny_helpers import TINY_TRAINING, tiny_args, fresh_model
"""

from transformers import LlamaForCausalLM


# What every trainer test sets: the CPU, no saving, no reporting, no worker processes, a log line per step.
CPU_RUN = dict(
    use_cpu=True, bf16=False, report_to="none", save_strategy="no", dataloader_num_workers=0, logging_steps=1
)
# ... and for the GRPO-family trainers, a couple of steps of small groups of short completions.
TINY_TRAINING = dict(**CPU_RUN, per_device_train_batch_size=8, num_generations=4, max_completion_length=8, max_steps=2)


def tiny_args(config_cls, tmp_path, **overrides):
    """`config_cls(output_dir=tmp_path, **TINY_TRAINING, **overrides)`."""
    return config_cls(**{"output_dir": str(tmp_path), **TINY_TRAINING, **overrides})


def fresh_model(model_state) -> LlamaForCausalLM:
    """A new Llama with the weights of `model_state` (`(config, state_dict)`), so every trainer starts the same."""
    cfg, state = model_state
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(state)
    return model
