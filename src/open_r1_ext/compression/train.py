"""`python -m open_r1_ext.compression.train --config recipes/compression_cpu.yaml [--flag value ...]`

The project's launch script (`open_r1_ext/grpo.py`) with `trainer_type: compression`: it prepares the data when
`data_dir` is empty, builds policy + reconstructor through `CompressionTrainer.build_model_and_data`, trains,
resumes from the last checkpoint in `output_dir`, and writes `results.json`. Multi-GPU / multi-node:
`accelerate launch -m open_r1_ext.compression.train --config ...` or `torchrun --nproc_per_node N -m ...`.
"""

from open_r1_ext.compression.trainer import train_with_launch_script


if __name__ == "__main__":
    train_with_launch_script()
