"""Run by test_distributed.py under `accelerate launch` with 2 CPU processes: one training step in which a prompt
group of 8 spans both processes (4 rows each). Every rank writes its local rows (completion texts, advantages) to
`<out>/rank<i>.json` so the test can recompute the estimate on the gathered batch and check each slice."""

import json
import os
import sys

import torch
from accelerate import PartialState
from datasets import Dataset

from open_r1_ext.core.tiny import char_tokenizer, micro_llama
from open_r1_ext.token_scavenger import TokenScavengerConfig, TokenScavengerGRPOTrainer


def char_count_reward(completions, **kwargs):
    """Graded reward: share of digits, so latent groups have variance inside them."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


class Recording(TokenScavengerGRPOTrainer):
    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        texts = self.processing_class.batch_decode(
            [ids[m.bool()] for ids, m in zip(out["completion_ids"], out["completion_mask"])], skip_special_tokens=True
        )
        first = [ids[m.bool()][:2].tolist() for ids, m in zip(out["completion_ids"], out["completion_mask"])]
        self.records = getattr(self, "records", []) + [
            {"texts": texts, "first_tokens": first, "advantages": out["advantages"].tolist()}
        ]
        return out


def main(out_dir: str):
    PartialState()  # the distributed state first, so the config sees world_size 2
    tok = char_tokenizer()
    model = micro_llama(tok)
    data = Dataset.from_list([{"prompt": f"{i} {i + 1}=", "completion": f">{2 * i + 1}"} for i in range(16)])
    args = TokenScavengerConfig(
        output_dir=out_dir,
        per_device_train_batch_size=4,
        num_generations=8,
        max_completion_length=6,
        max_steps=1,
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        seed=3,
        dataloader_num_workers=0,
        grouping_key="prefix",
        prefix_tokens=2,
        rl_warmup_steps=0,
        carousel_reward_threshold=0.0,
        use_adaptive_entropy=False,
    )
    trainer = Recording(
        model=model, reward_funcs=char_count_reward, args=args, train_dataset=data, processing_class=tok
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": trainer.accelerator.num_processes, "records": trainer.records}, f)
    # tear the gloo group down explicitly: left to interpreter exit, its threads were sometimes destroyed while
    # still joinable ("terminate called without an active exception", SIGABRT on rank 0 after a finished run)
    trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
