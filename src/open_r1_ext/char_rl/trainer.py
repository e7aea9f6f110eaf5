"""Char-level GRPO from random weights: language modelling as a game, exhaustive or sampled.

Seed: `../shared/seeds/002_c8edd421d4bf3219.txt` (the game, n-gram guidance, confidence scaling, health monitor).
The algorithm and the gradient it computes are in `game.py`; this file wires it into a trainer.

What the two forms of the game are, plainly: the **exhaustive** game (every character scored, the seed's design)
computes its expected policy gradient exactly, and that gradient *is* the gradient of cross-entropy plus n-gram
distillation, `(1 + c pi(y)) CE + lambda H(q, pi) + beta KL(pi || q)` (`game.py` derives it, a test checks it):
a supervised loss, with nothing left to explore. The **sampled** game (`group: sampled`: K characters drawn per
position, only their rewards read) is the reinforcement-learning version; it estimates the same gradient without
bias, with the n-gram teacher's expected reward as control variate.

How `CharGRPOTrainer` departs from plain GRPO:

1. **No generation.** The group of a position is every character of the vocabulary (or K sampled ones), so
   nothing is generated: one forward pass over a `(B, T)` block gives all `B*T` groups and the rewards of all V
   actions are table lookups (target, n-gram distribution). One step costs one forward and one backward.
2. **Built-in reward.** Exact match + n-gram partial credit (decaying linearly, or fading with the measured gap
   between the model's and the teacher's cross-entropy: `guidance_schedule: adaptive`) + a ramped confidence
   bonus (`game.py`); reward functions from a recipe are refused (`provides_reward_funcs`, so the launch script
   passes none). On training positions the n-gram teacher is leave-one-out (it never counts the label it scores).
3. **Advantages** are normalised per target by the policy's expected reward (`advantage_norm: target_mean`),
   which makes the exhaustive gradient exactly cross-entropy's for the exact-match term and a proper scoring
   rule with the n-gram partial credit, so it cannot collapse into overconfidence; `mean`, `std` (GRPO-style)
   and `none` are there to reproduce the failure modes (`game.py` derives all four). The sampled game's weights
   come from `game.sampled_coefficients` (control variate, optional leave-one-out baseline, priority sampling).
4. **KL toward the n-gram reference** (not toward a frozen copy of the policy: from random weights that copy
   knows nothing), with an optional adaptive coefficient (`adaptive_kl`, Ziegler et al. 2019).
5. **Its own model and data.** `build_model_and_data` (the launch script's hook) builds the character
   vocabulary (`core.tiny.char_tokenizer` through `data.CharTokenizer`), the 90/10 split and a GPT-2 from a preset
   with random weights; `objective: ce` trains the same model with plain cross-entropy, the twin the game is
   measured against.

Why `transformers.Trainer` and not `GRPOTrainer`: every GRPOTrainer method past `__init__` is about generating
completions for prompts and scoring them with reward functions (`_prepare_inputs`, `_generate_and_score_*`,
`_compute_loss` over completion masks), and its `__init__` sets up generation, vLLM and a reference model,
none of which the game uses. Subclassing it would mean overriding all of that and leaving an object in an
inconsistent state. The config does subclass `GRPOConfig`, so recipes, the launch script and the GRPO fields
that keep their meaning (`beta` = KL coefficient, `epsilon`/`epsilon_high` = clipping, `num_iterations`,
`entropy_coef`) work as for every other trainer here.

Overridden `Trainer` hooks: `compute_loss` (the game or CE), `_prepare_inputs` (batch reuse and old
log-probabilities when `num_iterations > 1`), `get_train_dataloader` (random blocks, nanoGPT's `get_batch`),
`training_step` (throughput), `_get_grad_norm` (health monitor and adaptive KL, once per optimizer step),
`evaluate` (val CE, bits/char, perplexity, accuracy, a text sample), `log` (merges the step metrics, NaN-safe
means through `core.metrics`), `_save_checkpoint` / `_load_optimizer_and_scheduler` (extra state through
`core.checkpoint`: health monitor, KL coefficient, the teacher-gap average of the adaptive guidance, the sampling
generator, and the n-gram cache reference, whose corpus fingerprint must match on resume). The config is `CharGRPOConfig` in `char_rl/config.py`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict
from transformers import Trainer

from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.kl import AdaptiveKLController
from open_r1_ext.core.metrics import average_metrics

from .config import CharGRPOConfig
from .data import CharCorpus, CharTokenizer, load_corpus
from .evaluation import evaluate_char_model, ngram_baselines, sample_text
from .game import (
    draw_group,
    game_loss,
    game_rewards,
    gradient_rel_error,
    proposal_logp,
    sampled_coefficients,
    teacher_expected_reward,
)
from .health import HealthMonitor, HealthThresholds
from .model import build_char_gpt2
from .ngram import NGramModel


logger = logging.getLogger(__name__)

STATE_NAME = "char_grpo"  # checkpoint-N/open_r1_ext_char_grpo.pt, written by the main process (core.checkpoint)
_CHUNK = 1 << 20  # characters per dataset row; rows concatenate back to the split exactly


class _Blocks(torch.utils.data.Dataset):
    """Item i is the block at a precomputed random offset: deterministic per index, so resume skips exactly."""

    def __init__(self, data: torch.Tensor, block_size: int, n: int, seed: int):
        self.data, self.block_size = data, block_size
        gen = torch.Generator().manual_seed(seed)
        self.offsets = torch.randint(len(data) - block_size - 1, (n,), generator=gen)

    def __len__(self):
        return len(self.offsets)

    def __getitem__(self, i):
        w = self.data[self.offsets[i] : self.offsets[i] + self.block_size + 1]
        return {"input_ids": w[:-1], "labels": w[1:]}


def _split_dataset(text: str) -> Dataset:
    return Dataset.from_dict({"text": [text[i : i + _CHUNK] for i in range(0, max(len(text), 1), _CHUNK)]})


def corpus_datasets(corpus: CharCorpus) -> DatasetDict:
    """The split as `train`/`test` datasets of text chunks (what the launch script hands to the trainer)."""
    tok = corpus.tokenizer
    return DatasetDict(
        {"train": _split_dataset(tok.decode(corpus.train)), "test": _split_dataset(tok.decode(corpus.val))}
    )


class CharGRPOTrainer(Trainer):
    """The character game (or its CE twin) on a GPT-2 from random weights; see the module docstring."""

    provides_reward_funcs = True  # the launch script passes `reward_funcs=[]`: the game's reward is built in
    # TRL's names for its model cards (`_BaseTrainer.create_model_card`); plain `Trainer` reads neither. No paper:
    # the idea is seed 002.
    _name = "CharGRPO"
    _paper = {}

    @classmethod
    def build_model_and_data(cls, script_args, training_args: CharGRPOConfig, model_args=None) -> dict:
        """The launch script's hook: vocabulary and split from `corpus`, a randomly initialised GPT-2."""
        corpus = CharCorpus.from_text(
            load_corpus(training_args.corpus, training_args.corpus_max_chars), training_args.train_fraction
        )
        torch.manual_seed(training_args.seed)
        model = cls.build_model(training_args, len(corpus.tokenizer))
        return {"model": model, "processing_class": corpus.tokenizer, "dataset": corpus_datasets(corpus)}

    @staticmethod
    def build_model(args: CharGRPOConfig, vocab_size: int):
        return build_char_gpt2(
            vocab_size, args.block_size, args.model_preset, args.dropout, args.n_layer, args.n_head, args.n_embd
        )

    def __init__(
        self,
        model=None,
        reward_funcs=None,
        args: CharGRPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: CharTokenizer | None = None,
        peft_config=None,
        callbacks=None,
        **kwargs,
    ):
        args = self._checked_args(args, reward_funcs, peft_config)
        self.corpus = self._resolve_corpus(args, train_dataset, eval_dataset, processing_class)
        tok = self.corpus.tokenizer
        if model is None:
            torch.manual_seed(args.seed)
            model = self.build_model(args, len(tok))
        if model.config.vocab_size != len(tok):
            raise ValueError(f"Model vocab_size {model.config.vocab_size} != corpus vocabulary {len(tok)}")
        if args.max_steps <= 0:
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            args.max_steps = math.ceil(args.num_train_epochs * len(self.corpus.train) / (per_step * args.block_size))
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset if train_dataset is not None else _split_dataset(""),
            # evaluation reads `self.corpus.val`; Trainer only checks that an eval set exists when it evaluates
            eval_dataset=eval_dataset if eval_dataset is not None else _split_dataset(" "),
            processing_class=tok,
            callbacks=callbacks,
            **kwargs,
        )
        self.ngram = NGramModel.cached(
            self.corpus.train, len(tok), args.ngram_order, args.ngram_alpha, self.corpus.fingerprint
        )
        self.health = HealthMonitor(
            HealthThresholds(
                window=args.health_window,
                overconfidence_warn=args.health_overconfidence_warn,
                grad_cv_warn=args.health_grad_cv_warn,
            )
        )
        self.kl_controller = (
            AdaptiveKLController(args.beta, args.kl_target, args.kl_adaptation_rate) if args.adaptive_kl else None
        )
        self.beta = args.beta
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._kl_since_step: list[float] = []
        self._buffer: dict | None = None
        self._buffer_uses = 0
        self._chars, self._step_seconds, self.eval_seconds = 0, 0.0, 0.0
        self.eval_history: list[dict] = []
        self.samples: list[tuple[int, str]] = []
        self._baselines: dict | None = None
        self._sample_gen = torch.Generator().manual_seed(args.seed)
        self.teacher_gap: float | None = None  # moving average of model CE - teacher CE on training batches

    @staticmethod
    def _checked_args(args: CharGRPOConfig | None, reward_funcs, peft_config) -> CharGRPOConfig:
        """`args` (`CharGRPOConfig`'s defaults when None), refusing what the game does not take."""
        args = args if args is not None else CharGRPOConfig(output_dir="runs/char_grpo")
        if not isinstance(args, CharGRPOConfig):
            raise TypeError(f"CharGRPOTrainer needs a CharGRPOConfig, got {type(args).__name__}")
        if reward_funcs:
            raise ValueError(
                "CharGRPOTrainer scores every character from the target and the n-gram tables; it takes no "
                f"reward_funcs (got {reward_funcs!r}). Set `reward_funcs: []` in the recipe."
            )
        if peft_config is not None:
            raise ValueError(
                "CharGRPOTrainer trains a small model from random weights; LoRA (use_peft) is not supported"
            )
        return args

    @staticmethod
    def _resolve_corpus(args, train_dataset, eval_dataset, tokenizer) -> CharCorpus:
        """Train/val text from the datasets when given (rows of a `text` column, concatenated), else `corpus`."""
        if train_dataset is not None and eval_dataset is not None:
            train_text, val_text = "".join(train_dataset["text"]), "".join(eval_dataset["text"])
            tok = tokenizer or CharTokenizer.from_text(train_text + val_text)
            return CharCorpus.from_splits(train_text, val_text, tok)
        full = CharCorpus.from_text(load_corpus(args.corpus, args.corpus_max_chars), args.train_fraction, tokenizer)
        if train_dataset is None:
            return full
        # the launch script passes no eval_dataset when eval_strategy is "no": the val split comes from `corpus`
        train = CharCorpus.from_splits("".join(train_dataset["text"]), "", full.tokenizer)
        if train.fingerprint != full.fingerprint:
            raise ValueError(
                "train_dataset is not the training split of `corpus`; pass eval_dataset too, or set `corpus`"
            )
        return full

    # -- data ------------------------------------------------------------------------------------------------------

    def get_train_dataloader(self):
        args = self.args
        n = args.max_steps * args.gradient_accumulation_steps * args.per_device_train_batch_size * args.world_size
        blocks = _Blocks(self.corpus.train, args.block_size, n, seed=args.seed)
        loader = torch.utils.data.DataLoader(
            blocks, batch_size=args.per_device_train_batch_size, shuffle=False, num_workers=0, drop_last=True
        )
        return self.accelerator.prepare(loader)

    def _prepare_inputs(self, inputs):
        """With `num_iterations > 1`, each fresh batch is reused that many times against its first policy
        (the loader's batches in between are dropped); otherwise the batch is used once and pi_old = pi."""
        inputs = super()._prepare_inputs(inputs)
        if self.args.num_iterations <= 1 or self.args.objective == "ce":
            return inputs
        if self._buffer is None or self._buffer_uses >= self.args.num_iterations:
            with torch.no_grad():
                old = self.model(input_ids=inputs["input_ids"]).logits.float().log_softmax(-1)
            self._buffer, self._buffer_uses = {**inputs, "old_logp": old}, 0
        self._buffer_uses += 1
        return self._buffer

    # -- loss ------------------------------------------------------------------------------------------------------

    def schedules(self, step: int | None = None) -> tuple[float, float]:
        """(partial-credit weight lambda_t, confidence-bonus weight c_t) at optimizer step `step`."""
        a, step = self.args, self.state.global_step if step is None else step
        if a.guidance_schedule == "adaptive":
            gap = self.teacher_gap if self.teacher_gap is not None else a.guidance_gap_scale
            lam = a.partial_credit * min(1.0, max(0.0, gap / a.guidance_gap_scale))
        elif a.guidance_decay_steps > 0:
            lam = a.partial_credit * max(0.0, 1.0 - step / a.guidance_decay_steps)
        else:
            lam = a.partial_credit
        conf = a.confidence_bonus * (min(1.0, step / a.confidence_ramp_steps) if a.confidence_ramp_steps > 0 else 1.0)
        return lam, conf

    def teacher(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The n-gram teacher's `(B, T, V)` distributions after every position of the training block `x`
        (leave-one-out counts, `exclude=y`, unless `ngram_leave_one_out` is off)."""
        exclude = y.cpu() if self.args.ngram_leave_one_out else None
        return self.ngram.lookup(x.cpu(), self.args.ngram_order, exclude=exclude)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        x, y = inputs["input_ids"], inputs["labels"]
        logits = model(input_ids=x).logits
        a = self.args
        metrics: dict[str, float] = {}
        if a.objective == "ce":
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        else:
            old_logp = inputs.get("old_logp")
            old_logp = logits.detach().float().log_softmax(-1) if old_logp is None else old_logp
            old_probs = old_logp.exp()
            lam, conf = self.schedules()
            q = self.teacher(x, y).to(logits.device)
            rewards = game_rewards(y, q, old_probs, lam, conf)
            coef = None
            if a.group == "sampled":
                coef = self._sampled_coefficients(old_logp, rewards, y, q, lam, conf, metrics)
            loss, game_metrics = game_loss(
                logits,
                old_logp,
                rewards,
                advantage_norm=a.advantage_norm,
                epsilon_low=a.epsilon,
                epsilon_high=a.epsilon_high if a.epsilon_high is not None else a.epsilon,
                entropy_coef=a.entropy_coef,
                kl_coef=self.beta,
                ref_logp=q.clamp_min(1e-12).log() if self.beta > 0 else None,
                coef=coef,
            )
            metrics.update({f"game/{k}": float(v) for k, v in game_metrics.items()})
            with torch.no_grad():
                model_ce = float(F.cross_entropy(logits.detach().float().flatten(0, 1), y.flatten()))
                teacher_ce = float(-q.gather(-1, y[..., None]).clamp_min(1e-12).log().mean())
            gap = model_ce - teacher_ce
            m = a.guidance_gap_ema
            self.teacher_gap = gap if self.teacher_gap is None else m * self.teacher_gap + (1 - m) * gap
            metrics.update(
                {
                    "game/partial_credit_weight": lam,
                    "game/confidence_bonus_weight": conf,
                    "game/kl_coef": self.beta,
                    "game/teacher_ce": teacher_ce,
                    "game/teacher_gap": self.teacher_gap,
                }
            )
            if "game/kl_ngram" in metrics:
                self._kl_since_step.append(metrics["game/kl_ngram"])
        with torch.no_grad():
            probs = logits.detach().float().softmax(-1)
            metrics["train/ce"] = float(F.cross_entropy(logits.detach().float().flatten(0, 1), y.flatten()))
            metrics["train/entropy"] = float(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean())
            metrics.update(self.health.observe_predictions(probs, y))
        for k, v in metrics.items():
            self._metrics[k].append(v)
        return (loss, logits) if return_outputs else loss

    def _sampled_coefficients(self, old_logp, rewards, y, q, lam, conf, metrics: dict) -> torch.Tensor:
        """The sampled game's gradient weights (`game.sampled_coefficients`) and its diagnostics: how far the
        estimate is from the exact (exhaustive) gradient with the configured variance reduction and, on the same
        draws, without the control variate and without the baseline; how often the target is in the group."""
        a = self.args
        gen = self._sample_gen if old_logp.device.type == "cpu" else None
        log_mu = proposal_logp(old_logp, a.sample_temperature, q, a.sample_teacher_mix)
        actions, inv = draw_group(log_mu, a.group_size, a.sampler, generator=gen)
        control = teacher_expected_reward(q, old_logp.exp(), lam, conf)
        use_cv = control if a.control_variate == "teacher" else None
        coef = sampled_coefficients(old_logp, rewards, actions, inv, use_cv, a.sampled_baseline)
        with torch.no_grad():
            probs = old_logp.exp()
            metrics["game/est_rel_var"] = float(gradient_rel_error(coef, rewards, probs))
            for name, cv, base in (("no_cv", None, a.sampled_baseline), ("no_baseline", use_cv, "none")):
                if (cv is None and use_cv is None) or (base == a.sampled_baseline and cv is use_cv):
                    continue
                other = sampled_coefficients(old_logp, rewards, actions, inv, cv, base)
                metrics[f"game/est_rel_var_{name}"] = float(gradient_rel_error(other, rewards, probs))
            metrics["game/target_in_group"] = float((actions == y[..., None]).any(-1).float().mean())
        return coef

    def training_step(self, model, inputs, num_items_in_batch=None):
        t0 = time.perf_counter()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_seconds += time.perf_counter() - t0
        self._chars += inputs["labels"].numel()
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """Once per optimizer step: the health monitor's gradient statistics and the adaptive KL update."""
        grad_norm = super()._get_grad_norm(model, grad_norm)
        if grad_norm is not None:
            for k, v in self.health.observe_grad_norm(float(grad_norm)).items():
                self._metrics[k].append(v)
        if self.kl_controller is not None and self._kl_since_step:
            self.beta = self.kl_controller.update(sum(self._kl_since_step) / len(self._kl_since_step))
        self._kl_since_step.clear()
        return grad_norm

    # -- logging and evaluation ------------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # `_metrics` holds training-step values only (`evaluate` logs its own, already `eval_`-prefixed)
        if self.model is not None and self.model.training and self._metrics:
            logs = {**logs, **average_metrics(self._metrics, "train")}  # NaN-safe means, None when all NaN
            if "game/reward_mean" in logs:  # the launch script's run summary plots `reward`
                logs["reward"] = logs["game/reward_mean"]
            if self._step_seconds > 0:
                logs["perf/chars_per_second"] = self._chars / self._step_seconds
            self._metrics.clear()
            self._chars, self._step_seconds = 0, 0.0
        super().log(logs, start_time)

    def baselines(self) -> dict:
        """Unigram / bigram / 4-gram val CE, bits/char and accuracy on this split (computed once, cached)."""
        if self._baselines is None:
            c = self.corpus
            self._baselines = ngram_baselines(c.train, c.val, len(c.tokenizer), c.fingerprint, self.args.ngram_alpha)
        return self._baselines

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        t0 = time.perf_counter()
        a = self.args
        m = evaluate_char_model(
            self.model, self.corpus.val, a.block_size, a.per_device_train_batch_size, a.eval_batches, a.eval_seed
        )
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in m.items()}
        for name, b in self.baselines().items():
            metrics[f"{metric_key_prefix}_{name}_ce"] = b["ce"]
        if a.sample_chars > 0 and self.accelerator.is_main_process:
            text = sample_text(
                self.model, self.corpus.tokenizer, "\n", a.sample_chars, 1.0, seed=a.seed + self.state.global_step
            )
            self.samples.append((self.state.global_step, text))
            logger.info("[sample @ step %d]\n%s", self.state.global_step, text)
            print(f"[sample @ step {self.state.global_step}] {text!r}", flush=True)
        self.eval_history.append({"step": self.state.global_step, **m})
        self.eval_seconds += time.perf_counter() - t0
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def summary_results(self) -> dict:
        """Final figures for `results.json`: val metrics, baselines, throughput, health warnings."""
        if not self.eval_history or self.eval_history[-1]["step"] != self.state.global_step:
            self.evaluate()
        last = self.eval_history[-1]
        return {
            "objective": self.args.objective,
            "val_ce": last["ce"],
            "val_bpc": last["bpc"],
            "val_perplexity": last["perplexity"],
            "val_accuracy": last["accuracy"],
            "baselines": self.baselines(),
            "eval_curve": self.eval_history,
            "health_warnings": dict(self.health.warnings),
            "samples": [{"step": s, "text": t} for s, t in self.samples[-2:]],
        }

    # -- checkpoint state ------------------------------------------------------------------------------------------

    def char_state(self) -> dict:
        return {
            "health": self.health.state_dict(),
            "beta": self.beta,
            "teacher_gap": self.teacher_gap,
            "sample_generator": self._sample_gen.get_state(),
            "kl_controller": self.kl_controller.state_dict() if self.kl_controller is not None else None,
            "ngram": {
                "fingerprint": self.corpus.fingerprint,
                "order": self.ngram.order,
                "alpha": self.ngram.alpha,
                "vocab_size": self.ngram.vocab_size,
                "cache_path": str(
                    NGramModel.cache_path(
                        self.corpus.fingerprint, self.ngram.vocab_size, self.ngram.order, self.ngram.alpha
                    )
                ),
            },
            "vocab": self.corpus.tokenizer.itos,
        }

    def load_char_state(self, state: dict) -> None:
        ng = state["ngram"]
        if (
            ng["fingerprint"] != self.corpus.fingerprint
            or state.get("vocab", self.corpus.tokenizer.itos) != self.corpus.tokenizer.itos
        ):
            raise ValueError(
                f"Checkpoint was trained on another corpus (fingerprint {ng['fingerprint']!r}, this run "
                f"{self.corpus.fingerprint!r}); resume with the same `corpus` and `corpus_max_chars`"
            )
        if (ng["order"], ng["alpha"]) != (self.ngram.order, self.ngram.alpha):
            self.ngram = NGramModel.cached(
                self.corpus.train, ng["vocab_size"], ng["order"], ng["alpha"], ng["fingerprint"]
            )
        self.health.load_state_dict(state["health"])
        if state.get("kl_controller") is not None and self.kl_controller is not None:
            self.kl_controller.load_state_dict(state["kl_controller"])
        self.beta = self.kl_controller.beta if self.kl_controller is not None else float(state.get("beta", self.beta))
        self.teacher_gap = state.get("teacher_gap")
        if state.get("sample_generator") is not None:
            self._sample_gen.set_state(state["sample_generator"])

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        # one file from the main process, read by every process: beta and the KL controller are the same everywhere;
        # the health window (a diagnostic) is the main process' own
        save_extra_state(self, trial, STATE_NAME, self.char_state(), per_process=False)

    def load_checkpoint_state(self, checkpoint: str) -> bool:
        """Restore the extra state saved in `checkpoint`; False (`core.checkpoint` warns) when it has none."""
        state = load_extra_state(self, checkpoint, STATE_NAME, per_process=False)
        if state is None:
            return False
        self.load_char_state(state)
        return True

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.load_checkpoint_state(checkpoint)
