"""RL token compression (issue #7): keep/mask policy + GPT-2 reconstructor trained jointly by rate-distortion.

Commands (each reads a recipe through TRL's parser; CLI flags override it):

    python -m open_r1_ext.compression.prepare  --config recipes/compression_data.yaml
    python -m open_r1_ext.compression.train    --config recipes/compression_cpu.yaml
    python -m open_r1_ext.compression.evaluate --config recipes/compression_eval.yaml
    python -m open_r1_ext.compression.search   --config recipes/compression_cpu.yaml --max-trials 20

`train` is the project's launch script (`open_r1_ext/grpo.py`) with `trainer_type: compression`.
"""

from open_r1_ext.compression.trainer import CompressionConfig, CompressionTrainer


__all__ = ["CompressionConfig", "CompressionTrainer"]
