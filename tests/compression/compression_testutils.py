"""Shared test inputs: a tiny corpus and the tiny training config."""

from tiny_helpers import CPU_RUN


TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\nNo more; and by a sleep to say we end\n"
)


def tiny_args(tmp_path, data_dir, **kw):
    from open_r1_ext.compression.trainer import CompressionConfig

    base = dict(
        output_dir=str(tmp_path / "run"),
        data_dir=str(data_dir),
        vocab_size=300,
        seq_len=16,
        policy_hidden_size=32,
        policy_num_layers=2,
        recon_n_layer=2,
        recon_n_embd=32,
        recon_n_head=2,
        per_device_train_batch_size=4,
        num_generations=2,
        max_steps=4,
        learning_rate=3e-3,
        policy_learning_rate=3e-3,
        warmup_steps=0,
        disable_tqdm=True,
        seed=0,
        recon_warm_start_steps=0,
        **CPU_RUN,
    )
    base.update(kw)
    return CompressionConfig(**base)
