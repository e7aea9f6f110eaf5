"""RL token compression (issue #7): keep/mask policy + GPT-2 reconstructor trained jointly by rate-distortion.

Commands (each reads a recipe through TRL's parser; CLI flags override it):

    python launch/compression_prepare.py  --config recipes/compression_data.yaml
    python src/open_r1_ext/grpo.py        --config recipes/compression_cpu.yaml  # training (trainer_type: compression)
    python launch/compression_evaluate.py --config recipes/compression_eval.yaml
    python launch/compression_search.py   --config recipes/compression_cpu.yaml --max-trials 20

The library the commands call lives here: `data.prepare_data`, `evaluation.run_evaluation`, `trainer`'s builders.
"""

from open_r1_ext.compression.config import CompressionConfig
from open_r1_ext.compression.trainer import CompressionTrainer


__all__ = ["CompressionConfig", "CompressionTrainer"]
