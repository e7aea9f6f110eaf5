"""RL token compression (issues #7, #18): a keep/mask policy that learns its own rate and a GPT-2 infilling
reconstructor (gap-marked sequence as prefix, then the removed tokens; warm-started on the corpus, cached; `reconstructor: mlm` is a
masked-LM alternative), trained jointly by rate - λ · distortion; evaluated at the measured ratio.

Commands (each reads a recipe through TRL's parser; CLI flags override it):

    python launch/compression_prepare.py  --config recipes/compression_data.yaml
    python src/open_r1_ext/grpo.py        --config recipes/compression_cpu.yaml  # training (trainer_type: compression)
    python launch/compression_evaluate.py --config recipes/compression_eval.yaml --eval_run_dirs RUN ...
    python launch/bench_compression.py                                           # λ sweep x 3 seeds, plot
    python launch/compression_search.py   --config recipes/compression_cpu.yaml --max-trials 20

The library the commands call lives here: `data.prepare_data`, `evaluation.run_evaluation`, `trainer`'s builders,
`warmstart.build_warm_start`, `infill` (the GPT-2 infilling layout and greedy decoding).
"""

from open_r1_ext.compression.config import CompressionConfig
from open_r1_ext.compression.trainer import CompressionTrainer


__all__ = ["CompressionConfig", "CompressionTrainer"]
