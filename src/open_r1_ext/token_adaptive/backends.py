"""The two samplers behind the group assembly: transformers `generate` (exact uncertainty) and TRL's vLLM (top-k).

Both implement `sampling.RolloutBackend` for a `TokenAdaptiveGRPOTrainer`. The vLLM one is written against TRL
1.16's `VLLMGeneration.generate` (colocate and server modes) and was not run here (vLLM does not install on this
machine); its request settings and output parsing are the pure functions below, tested on hand-made outputs.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from .sampling import Sampled
from .uncertainty import (
    NO_FAILURE,
    PerRowMaxNewTokens,
    SampledLogRatio,
    UncertaintyMonitor,
    find_branch_points,
    find_failure_points,
    topk_uncertainty,
)


def _global_max(accelerator, n: int) -> int:
    if accelerator.num_processes == 1:
        return n
    return int(accelerator.gather(torch.tensor([n], device=accelerator.device)).max().item())


def completion_lengths(
    completion_ids: torch.Tensor,
    eos_token_ids: list[int],
    budgets: torch.Tensor | None = None,
    stop_step: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tokens really sampled per row of a padded `generate` output.

    Args:
        completion_ids: `(B, T)` generated tokens (after the prompt).
        eos_token_ids: a row ends with its first EOS (kept).
        budgets: `(B,)` per-row token budgets, or None.
        stop_step: `(B,)` position at which a row was stopped on a failure (kept), `NO_FAILURE` otherwise.

    Returns:
        `(B,)` long: the length of each row's kept tokens.
    """
    B, T = completion_ids.shape
    is_eos = torch.isin(completion_ids, torch.tensor(eos_token_ids, device=completion_ids.device))
    lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, torch.full((B,), T, device=is_eos.device))
    if budgets is not None:
        lengths = torch.minimum(lengths, budgets.to(lengths.device))
    if stop_step is not None:
        stopped = stop_step != NO_FAILURE
        lengths = torch.where(stopped, torch.minimum(lengths, stop_step.to(lengths.device) + 1), lengths)
    return lengths


class TransformersBackend:
    """Samples with the policy's `generate`, as TRL's regular generation path does (same padding, the same
    unwrapping for DeepSpeed/FSDP/PEFT, TRL's generation config with the temperature and length changed)."""

    pad_equal = False

    def __init__(self, trainer):
        self.trainer = trainer

    def sync_count(self, n: int) -> int:
        return _global_max(self.trainer.accelerator, n)

    def sample_first(self, prompts: list[list[int]], detect: bool) -> list[Sampled]:
        t, args = self.trainer, self.trainer.args
        monitor = None
        if detect:
            # relative branch points need the whole entropy profile: the rollout runs to its end
            stop = args.branch_rule == "absolute" and not args.keeps_base(use_vllm=False)
            monitor = UncertaintyMonitor(
                t.temperature,
                args.uncertainty_threshold,
                args.entropy_threshold,
                args.min_prefix_length,
                stop_on_failure=stop,
                eos_token_ids=list(t.eos_token_ids),
            )
        ids, lengths, _ = self._generate(prompts, t.temperature, None, monitor)
        fps = torch.full((len(prompts),), NO_FAILURE, dtype=torch.long)
        if monitor is not None and ids.size(1) > 0:
            width = ids.size(1)
            mask = torch.arange(width).expand(len(prompts), width) < lengths.unsqueeze(1)
            fps = branch_points(args, monitor.max_prob[:, :width].cpu(), monitor.entropy[:, :width].cpu(), mask)
        return [
            Sampled(row[:n].tolist(), None, int(fp), int(n)) for row, n, fp in zip(ids, lengths.tolist(), fps.tolist())
        ]

    def sample_continuations(self, prompts: list[list[int]], budgets: list[int], temperature: float) -> list[Sampled]:
        off_policy = temperature != self.trainer.temperature
        recorder = SampledLogRatio(self.trainer.temperature, temperature) if off_policy else None
        ids, lengths, ratios = self._generate(prompts, temperature, budgets, None, recorder)
        return [
            Sampled(row[:n].tolist(), None, NO_FAILURE, int(n), ratios[i, :n].tolist() if off_policy else None)
            for i, (row, n) in enumerate(zip(ids, lengths.tolist()))
        ]

    def _generate(self, rows, temperature, budgets, monitor, recorder=None):
        """Left-padded batch generation; returns `(completion_ids (B, T) on CPU, kept lengths (B,), log ratios (B, T)
        on CPU or None)`, the last from `recorder` (a `SampledLogRatio`) when one is given."""
        t = self.trainer
        device = t.accelerator.device
        tensors = [torch.tensor(r, dtype=torch.long) for r in rows]
        input_ids = pad(
            tensors,
            padding_value=t._tokenizer.pad_token_id,
            padding_side="left",
            pad_to_multiple_of=t.pad_to_multiple_of,
        ).to(device)
        attention_mask = pad(
            [torch.ones_like(x) for x in tensors],
            padding_value=0,
            padding_side="left",
            pad_to_multiple_of=t.pad_to_multiple_of,
        ).to(device)
        width = input_ids.size(1)
        config = copy.deepcopy(t.generation_config)
        config.temperature = temperature
        budget_tensor = torch.tensor(budgets) if budgets is not None else None
        if budgets is not None:
            config.max_new_tokens = max(budgets)
        processors, criteria = LogitsProcessorList(), StoppingCriteriaList()
        if budgets is not None and min(budgets) < max(budgets):
            criteria.append(PerRowMaxNewTokens(width, budget_tensor))
        if monitor is not None:
            processors.append(monitor)
            criteria.append(monitor.stopper())
        if recorder is not None:
            processors.append(recorder)
        with (
            profiling_context(t, "transformers.generate"),
            unwrap_model_for_generation(
                t.model_wrapped,
                t.accelerator,
                gather_deepspeed3_params=t.args.ds3_gather_for_generation,
                generation_kwargs=t.generation_kwargs,
                gradient_checkpointing_kwargs=t.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
            t._dist.summon_full_params(t.model_wrapped, recurse=False),
        ):
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=criteria,
            )
        completion = out[:, width:].cpu()
        stop_step = monitor.stop_step.cpu() if monitor is not None and monitor.stop_step is not None else None
        lengths = completion_lengths(completion, list(t.eos_token_ids), budget_tensor, stop_step)
        ratios = recorder.finish(out[:, width:]).cpu() if recorder is not None else None
        return completion, lengths, ratios


def branch_points(args, max_prob: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`(B,)` branch points of first rollouts under `args.branch_rule` (`NO_FAILURE` where a row has none)."""
    if args.branch_rule == "relative":
        return find_branch_points(entropy, mask, args.branch_min_fraction, args.branch_max_fraction)
    return find_failure_points(
        max_prob, entropy, mask, args.uncertainty_threshold, args.entropy_threshold, args.min_prefix_length
    )


# ---------------------------------------------------------------------------------------------------------------
# vLLM: request settings and output parsing (pure), and the backend that calls TRL's VLLMGeneration


def vllm_request(temperature: float, max_tokens: int, top_k_logprobs: int) -> dict:
    """The `VLLMGeneration` attributes one adaptive call sets (TRL reads them at each `generate`): the sampling
    temperature, the token cap, and how many top logprobs per position vLLM returns (0 = the sampled token's)."""
    return {
        "temperature": float(temperature),
        "max_completion_length": int(max_tokens),
        "logprobs": int(top_k_logprobs),
    }


@contextmanager
def overridden(obj, settings: dict):
    """Set attributes of `obj` for the duration of the block, then restore them (also on error)."""
    saved = {k: getattr(obj, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(obj, k, v)
        yield obj
    finally:
        for k, v in saved.items():
            setattr(obj, k, v)


def sampled_token_logprobs(
    completion_ids: list[list[int]],
    logprobs: list[list[list[float | None]]] | None,
    logprob_token_ids: list[list[list[int]]] | None,
) -> list[list[float | None]] | None:
    """The logprob of each sampled token from vLLM's rank-sorted per-position lists.

    With `logprobs=0` each position holds only the sampled token; with `logprobs=N` it holds the top N sorted by
    rank plus the sampled token when it falls outside them, so the sampled one is found by its id (TRL's own path
    takes index 0, which is only right for `logprobs=0`). Returns None when vLLM returned no logprobs.
    """
    if logprobs is None:
        return None
    out = []
    for b, (ids, row) in enumerate(zip(completion_ids, logprobs)):
        seq = []
        for t, (tok, top) in enumerate(zip(ids, row)):
            if logprob_token_ids is None or len(top) == 1:
                seq.append(top[0])
                continue
            cand = logprob_token_ids[b][t]
            seq.append(top[cand.index(tok)] if tok in cand else None)
        out.append(seq)
    return out


def parse_first_rollouts(
    completion_ids: list[list[int]],
    logprobs: list[list[list[float | None]]] | None,
    logprob_token_ids: list[list[list[int]]] | None,
    *,
    detect: bool,
    uncertainty_threshold: float,
    entropy_threshold: float,
    min_prefix_length: int,
    vocab_size: int | None,
    branch_rule: str = "absolute",
    branch_min_fraction: float = 0.2,
    branch_max_fraction: float = 0.8,
) -> list[Sampled]:
    """First rollouts from vLLM outputs: branch points from the top-k logprobs (when `detect`, under `branch_rule`),
    sampled-token logprobs for TRL's importance-sampling correction. vLLM cannot be stopped at a failure point
    through TRL's API, so every row was sampled to its end and counts all its tokens."""
    fps = [NO_FAILURE] * len(completion_ids)
    if detect and logprobs is not None and completion_ids:
        max_prob, entropy, mask = topk_uncertainty(logprobs, vocab_size)
        if branch_rule == "relative":
            fps = find_branch_points(entropy, mask, branch_min_fraction, branch_max_fraction).tolist()
        else:
            fps = find_failure_points(
                max_prob, entropy, mask, uncertainty_threshold, entropy_threshold, min_prefix_length
            ).tolist()
    sampled = sampled_token_logprobs(completion_ids, logprobs, logprob_token_ids)
    return [
        Sampled(list(ids), sampled[i] if sampled is not None else None, int(fps[i]), len(ids))
        for i, ids in enumerate(completion_ids)
    ]


def parse_continuations(
    completion_ids: list[list[int]],
    logprobs: list[list[list[float | None]]] | None,
    logprob_token_ids: list[list[list[int]]] | None,
    budgets: list[int],
) -> list[Sampled]:
    """Continuations from vLLM outputs, each cut to its own budget (one call samples up to the largest)."""
    sampled = sampled_token_logprobs(completion_ids, logprobs, logprob_token_ids)
    out = []
    for i, (ids, budget) in enumerate(zip(completion_ids, budgets)):
        lp = sampled[i][:budget] if sampled is not None else None
        out.append(Sampled(list(ids)[:budget], lp, NO_FAILURE, len(ids)))
    return out


class VLLMBackend:
    """Samples through the trainer's `VLLMGeneration` (colocate or server), one row per request."""

    def __init__(self, trainer):
        self.trainer = trainer
        vg = trainer.vllm_generation
        # server mode and tensor-parallel colocate slice results by `process_index * len(prompts)`
        self.pad_equal = vg.mode == "server" or getattr(vg, "tensor_parallel_size", 1) > 1

    def sync_count(self, n: int) -> int:
        return _global_max(self.trainer.accelerator, n)

    def _call(self, rows, request: dict):
        vg = self.trainer.vllm_generation
        with overridden(vg, request):
            _, completion_ids, logprobs, logprob_token_ids = vg.generate(
                prompts=rows, images=None, num_generations=1, profiler=profiling_context(self.trainer, "vLLM.generate")
            )
        return completion_ids, logprobs, logprob_token_ids

    def sample_first(self, prompts: list[list[int]], detect: bool) -> list[Sampled]:
        t, args = self.trainer, self.trainer.args
        top_k = args.vllm_logprobs_top_k if detect else 0
        out = self._call(prompts, vllm_request(t.temperature, t.max_completion_length, top_k))
        return parse_first_rollouts(
            *out,
            detect=detect,
            uncertainty_threshold=args.uncertainty_threshold,
            entropy_threshold=args.entropy_threshold,
            min_prefix_length=args.min_prefix_length,
            vocab_size=len(t._tokenizer),
            branch_rule=args.branch_rule,
            branch_min_fraction=args.branch_min_fraction,
            branch_max_fraction=args.branch_max_fraction,
        )

    def sample_continuations(self, prompts: list[list[int]], budgets: list[int], temperature: float) -> list[Sampled]:
        out = self._call(prompts, vllm_request(temperature, max(budgets), 0))
        return parse_continuations(*out, budgets)
