"""DeepMime: distil a teacher causal LM into a small memory/MoE student with CE + GRPO + hidden-state losses.

Seed: `../shared/seeds/000_2452fced7af1b1cb.txt` (DeepMime). The public version is one 4,796-line file with no
results; here it is TokenScavenger's trainer (its subclass: two-level advantages on gathered rewards, advantage
clamp, CE anchor on reference completions, RL warm-up schedule) plus what distillation adds. How
`DeepMimeTrainer` departs from TRL's `GRPOTrainer`:

1. **Teacher** (`__init__`): any causal LM, named by `teacher_model_name_or_path` (hub id, local path or
   `builtin:<task>`) or by the `teacher_arch` preset (`1.3b`, `33b`: DeepSeek-Coder base models); frozen, eval
   mode, on the trainer's device.
2. **Student**: given (`model` / `student_model`, any causal LM or a saved `deepmime_student` checkpoint) or
   auto-created from the `student_*` / `memory_*` sizes with the teacher's tokenizer (`model.py`). A fresh student's
   memory is initialised from the teacher's weights by the weight encoders (`encoders.py`, `memory_init`).
3. **Reward**: `teacher_logprob`, the teacher's mean log-prob of the completion tokens, is added to the reward
   functions (in place of the `teacher_logprob` name when a recipe lists it, else appended with weight 1.0), beside
   any shaped rewards the recipe names. Advantages are TokenScavenger's (`advantage_estimator`), clamped to +-5.
4. **Loss** (`extra_loss_terms`, TokenScavenger's extension point): `w_grpo(step) * GRPO + ce_loss_weight *
   CE(ref) + kd_loss_weight * T^2 KL(teacher || student) + hidden_loss_weight * MSE(teacher_proj(h_student),
   LN(h_teacher)) + balance_loss_weight * MoE balance + router_z_loss_weight * router z-loss`. The CE, KD, hidden,
   balance and z terms read the one student forward on the reference completion that TokenScavenger's loss makes
   (`ReferenceForward`), and one teacher forward on the same tokens serves the KD and hidden terms; the teacher's
   last hidden state is layer-normalised (no affine) so the MSE does not scale with the teacher's activation size.
   The CE is measured (and logged) even at weight 0. DeepMime's own terms are logged under `deepmime/`,
   TokenScavenger's under `scavenger/`. The KD term (not in the seed, off by default) carries the teacher's next-token
   distribution; on the addition benchmark it added nothing measurable to the hidden-state term (README). Balance
   1e-2 and z-loss 1e-3 are Switch's and ST-MoE's values.
5. **Diagnostics**: `deepmime/memory_attention_entropy` and `deepmime/router_entropy` (per-token entropies over
   their maxima) on every loss forward; at evaluation `deepmime/memory_ablation_ce_increase`, the relative increase
   of the reference CE with the memory/MoE output removed (`model.memory_ablated`). `summary_results` adds the same
   on held-out rows of a built-in task (`diagnostics.memory_diagnostics`) to the launch script's `results.json`.
6. **Manual loop** (`train_step`): the seed's `DeepMimeTrainer(config=..., teacher_model_id=..., student_model=None)`
   then `trainer.train_step()` runs one optimizer step of the same update `train()` makes.
7. **Checkpoints** carry the teacher name, memory codes and rollouts scored (`core.checkpoint`, name `deepmime`),
   beside TokenScavenger's carousel.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM

from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.data import builtin_dataset, load_datasets, load_tokenizer
from open_r1_ext.core.rewards import REWARD_FUNCS, completion_text, register_reward, splice_reward
from open_r1_ext.core.tiny import TinyModelSettings, build_builtin, parse_builtin_name
from open_r1_ext.token_scavenger.trainer import TokenScavengerGRPOTrainer

from .config import MEMORY_INITS, TEACHER_PRESETS, DeepMimeConfig
from .diagnostics import memory_diagnostics
from .encoders import init_memory_from_teacher
from .model import DeepMimeStudentConfig, DeepMimeStudentForCausalLM, memory_ablated


logger = logging.getLogger(__name__)

STATE_NAME = "deepmime"  # checkpoint-N/open_r1_ext_deepmime.pt (core.checkpoint)

__all__ = ["MEMORY_INITS", "TEACHER_PRESETS", "DeepMimeConfig", "DeepMimeTrainer", "TeacherLogProbReward"]


def resolve_teacher_path(name: str, warm_start_steps: int = 600) -> str:
    """A hub id or path as given; `builtin:<task>` -> the cached warm-started tiny model's folder."""
    task = parse_builtin_name(name)
    if task is None:
        return name
    return str(build_builtin(TinyModelSettings(task=task, warm_start_steps=warm_start_steps)))


def load_teacher(name: str, dtype: str = "auto", warm_start_steps: int = 600):
    """`(model, tokenizer)` of a teacher, frozen and in eval mode."""
    path = resolve_teacher_path(name, warm_start_steps)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    model.eval().requires_grad_(False)
    return model, tokenizer


def create_student(args: DeepMimeConfig, tokenizer, teacher_config) -> DeepMimeStudentForCausalLM:
    """A fresh student with the config's sizes, the teacher's vocabulary and a projector to its hidden size."""
    cfg = DeepMimeStudentConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.student_hidden_size,
        num_hidden_layers=args.student_num_layers,
        num_attention_heads=args.student_num_heads,
        intermediate_size=args.student_intermediate_size,
        max_position_embeddings=args.student_max_position_embeddings,
        memory_slots=args.memory_slots,
        memory_latent_dim=args.memory_latent_dim,
        num_experts=args.num_experts,
        num_experts_per_tok=args.num_experts_per_tok,
        memory_scale_init=args.memory_scale_init,
        teacher_hidden_size=teacher_config.get_text_config().hidden_size,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    student = DeepMimeStudentForCausalLM(cfg)
    student.generation_config.pad_token_id = tokenizer.pad_token_id
    student.generation_config.eos_token_id = tokenizer.eos_token_id
    return student


class TeacherLogProbReward:
    """Reward `fn(prompts, completions, completion_ids, **kw) -> list[float | None]`: the teacher's mean log-prob of
    each completion's tokens given its prompt (None for an empty completion)."""

    __name__ = "teacher_logprob"

    def __init__(self, teacher, tokenizer, batch_size: int = 32):
        self.teacher, self.tokenizer, self.batch_size = teacher, tokenizer, batch_size

    def _prompt_ids(self, prompt) -> list[int]:
        if isinstance(prompt, list):  # conversational
            return list(self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        if completion_ids is None:
            completion_ids = [
                self.tokenizer(completion_text(c), add_special_tokens=False)["input_ids"] for c in completions
            ]
        device = next(self.teacher.parameters()).device
        pad = self.tokenizer.pad_token_id
        out: list[float | None] = []
        for start in range(0, len(prompts), self.batch_size):
            seqs, spans = [], []
            for p, c in zip(prompts[start : start + self.batch_size], completion_ids[start : start + self.batch_size]):
                p_ids, c_ids = self._prompt_ids(p), list(c)
                seqs.append(p_ids + c_ids)
                spans.append((len(p_ids), len(c_ids)))
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(seqs):
                ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s, dtype=torch.long), 1
            ids, mask = ids.to(device), mask.to(device)
            logps = self.teacher(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
            token_logps = logps.gather(-1, ids[:, 1:, None]).squeeze(-1)
            for i, (p_len, c_len) in enumerate(spans):
                if c_len == 0 or p_len == 0:
                    out.append(None)
                    continue
                out.append(token_logps[i, p_len - 1 : p_len - 1 + c_len].mean().item())
        return out


@register_reward("teacher_logprob")
def teacher_logprob(completions, **kwargs):
    """Placeholder replaced by `DeepMimeTrainer` with its teacher's `TeacherLogProbReward`."""
    raise RuntimeError("`teacher_logprob` is a placeholder: only DeepMimeTrainer can score with its teacher")


class DeepMimeTrainer(TokenScavengerGRPOTrainer):
    """DeepMime distillation trainer; see the module docstring for what changes w.r.t. `GRPOTrainer` and where.

    Hooks on top of TokenScavenger's: `extra_loss_terms` (hidden MSE, balance, CE measured at any weight) and
    `uses_reference`, `_generate_and_score_completions` (counts scored rollouts), `_save_checkpoint` /
    `_load_optimizer_and_scheduler` (DeepMime state); the rest is TokenScavenger's and TRL's.
    """

    _tag_names = ["trl", "grpo", "deepmime", "open-r1-ext"]
    _name = "DeepMime"
    _paper = {}  # seed 000 of open-r1-ext; no paper
    config_class = DeepMimeConfig
    provides_reward_funcs = True

    def __init__(
        self,
        model=None,
        reward_funcs=None,
        args: DeepMimeConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *pos,
        config: DeepMimeConfig | None = None,
        teacher_model_id: str | None = None,
        student_model=None,
        teacher_model=None,
        **kwargs,
    ):
        args = _resolve_config(args if args is not None else config, teacher_model_id)
        self.teacher_name = args.get_teacher_model_id()
        teacher_model, processing_class = _teacher_and_tokenizer(
            args, self.teacher_name, teacher_model, processing_class
        )
        model = _student(args, model if model is not None else student_model, processing_class, teacher_model)
        self.memory_codes = None
        fresh = isinstance(model, DeepMimeStudentForCausalLM) and model.config.memory_initialized_from is None
        if fresh and args.memory_init != "random":
            encoder = "hybrid" if args.memory_init == "teacher_hybrid" else "principal"
            self.memory_codes = init_memory_from_teacher(
                model, teacher_model, self.teacher_name, seed=args.seed, encoder=encoder
            )
        # Reward: the teacher's log-prob, in place of the `teacher_logprob` placeholder or appended with weight 1.0
        self.teacher_reward = TeacherLogProbReward(teacher_model, processing_class)
        funcs, args.reward_weights = splice_reward(
            reward_funcs, REWARD_FUNCS["teacher_logprob"], self.teacher_reward, args.reward_weights
        )
        if train_dataset is None:
            train_dataset = _default_dataset(args)
        super().__init__(model, funcs, args, train_dataset, eval_dataset, processing_class, *pos, **kwargs)
        self.teacher = teacher_model.to(self.accelerator.device)
        self.rollouts_scored = 0
        self._manual = None

    # ---- launch script ------------------------------------------------------------------------------------------

    @classmethod
    def build_model_and_data(cls, script_args, training_args, model_args) -> dict:
        """The student (`model_name_or_path` when given: any causal LM or a `deepmime_student` checkpoint; else
        auto-created), the teacher's tokenizer, and the dataset (`core.data`)."""
        path = resolve_teacher_path(training_args.get_teacher_model_id(), training_args.teacher_warm_start_steps)
        tokenizer = load_tokenizer(path)
        if model_args.model_name_or_path:
            model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path)
        else:
            model = create_student(training_args, tokenizer, AutoConfig.from_pretrained(path))
        dataset, _ = load_datasets(script_args)
        return {"model": model, "processing_class": tokenizer, "dataset": dataset}

    def summary_results(self) -> dict:
        """Held-out greedy accuracy of the student on a built-in task (rows carry `task`) and, for a DeepMime
        student, the memory diagnostics on 256 held-out reference completions (`memory_diagnostics`, keys prefixed
        `deepmime/`), for the launch script's `results.json`."""
        row = self.train_dataset[0]
        if "task" not in row:
            return {}
        from open_r1_ext.core.evaluation import evaluate_task
        from open_r1_ext.core.tasks import generate

        model = self.accelerator.unwrap_model(self.model)
        acc = evaluate_task(model, self.processing_class, row["task"], n=128, temperature=0.0)["pass@1"]
        out = {"accuracy_after_greedy": acc}
        if isinstance(model, DeepMimeStudentForCausalLM):
            rows = generate(row["task"], 256, seed=0, split="test")
            diagnostics = memory_diagnostics(model, self.processing_class, rows)
            out.update({f"deepmime/{k}": v for k, v in diagnostics.items()})
        return out

    # ---- rewards and losses -------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self.rollouts_scored += len(inputs) * self.accelerator.num_processes
        return output

    def uses_reference(self) -> bool:
        args = self.args
        return super().uses_reference() or any(
            w > 0
            for w in (
                args.hidden_loss_weight,
                args.balance_loss_weight,
                args.router_z_loss_weight,
                args.kd_loss_weight,
            )
        )

    def extra_loss_terms(self, model, inputs, reference) -> dict[str, tuple[float, torch.Tensor]]:
        """TokenScavenger's terms plus the hidden-state MSE, token-level distillation, the MoE balance loss and the
        router z-loss, all read from `reference` (one teacher forward serves the hidden and KD terms). Also logs the
        memory diagnostics (`_log_memory_diagnostics`)."""
        terms = super().extra_loss_terms(model, inputs, reference)
        if "ce_rows" not in inputs:
            return terms
        args = self.args
        zero = torch.zeros((), device=self.accelerator.device)
        ce, hidden_mse, kd, balance, z_loss = zero, zero, zero, zero, zero
        if reference is not None:  # else this micro-batch has no CE rows
            ce = terms["scavenger/ce_loss"][1] if "scavenger/ce_loss" in terms else self.reference_ce(reference)
            teacher_out = None
            if args.hidden_loss_weight > 0 or args.kd_loss_weight > 0:
                with torch.no_grad():
                    teacher_out = self.teacher(
                        input_ids=reference.input_ids,
                        attention_mask=reference.attention_mask,
                        output_hidden_states=args.hidden_loss_weight > 0,
                    )
            if args.hidden_loss_weight > 0:
                hidden_mse = self._hidden_mse(model, reference, teacher_out.hidden_states[-1])
            if args.kd_loss_weight > 0:
                kd = distillation_kl(reference, teacher_out.logits, args.kd_temperature)
            out = reference.output
            balance = out.aux_loss if getattr(out, "aux_loss", None) is not None else zero
            z_loss = out.router_z_loss if getattr(out, "router_z_loss", None) is not None else zero
            self._log_memory_diagnostics(model, reference, ce)
        terms["scavenger/ce_loss"] = (args.ce_loss_weight, ce)  # measured even at weight 0
        terms["deepmime/hidden_mse_loss"] = (args.hidden_loss_weight, hidden_mse)
        if args.kd_loss_weight > 0:
            terms["deepmime/kd_loss"] = (args.kd_loss_weight, kd)
        terms["deepmime/balance_loss"] = (args.balance_loss_weight, balance)
        terms["deepmime/router_z_loss"] = (args.router_z_loss_weight, z_loss)
        return terms

    def _log_memory_diagnostics(self, model, reference, ce: torch.Tensor):
        """`deepmime/memory_attention_entropy` and `deepmime/router_entropy` (normalised per-token entropies on the
        reference forward); in evaluation also `deepmime/memory_ablation_ce_increase`, the relative increase of the
        reference CE when the memory/MoE output is removed (one extra no-grad forward)."""
        out = reference.output
        if getattr(out, "memory_attention_entropy", None) is None:
            return  # not a DeepMime student
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        for name in ("memory_attention_entropy", "router_entropy"):
            value = getattr(out, name).to(self.accelerator.device)
            metrics[f"deepmime/{name}"].append(self.accelerator.gather(value).mean().item())
        if mode == "eval":
            with torch.no_grad(), memory_ablated(model):
                ablated = model(
                    input_ids=reference.input_ids,
                    attention_mask=reference.attention_mask,
                    logits_to_keep=reference.targets.size(1) + 1,
                )
            ablated_ce = self.reference_ce(reference._replace(output=ablated))
            increase = (ablated_ce - ce.detach()) / ce.detach().clamp(min=1e-8)
            metrics["deepmime/memory_ablation_ce_increase"].append(self.accelerator.gather(increase).mean().item())

    def _hidden_mse(self, model, reference, teacher_hidden: torch.Tensor) -> torch.Tensor:
        """MSE between the student's projected last hidden states and the teacher's last hidden states
        `teacher_hidden` `(R, P + W, H_teacher)`, layer-normalised, over the reference completion."""
        proj = getattr(model, "teacher_proj", None)
        if proj is None:
            return torch.zeros((), device=self.accelerator.device)
        width = reference.targets.size(1)
        target = teacher_hidden[:, -width:].float()
        target = F.layer_norm(target, target.shape[-1:])
        pred = proj(reference.output.last_hidden_state[:, -width:]).float()
        m = reference.mask.unsqueeze(-1).float()
        return (((pred - target) ** 2) * m).sum() / (m.sum() * target.size(-1)).clamp(min=1.0)

    # ---- manual loop --------------------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One optimizer step (`gradient_accumulation_steps` micro-batches) of the update `train()` makes, for a
        user's own loop; returns the step's logged metrics. Single process only (use `train()` under accelerate)."""
        if self.accelerator.num_processes > 1:
            raise RuntimeError("train_step() runs in one process; launch train() for multi-process training")
        if self._manual is None:
            max_steps = self.args.max_steps if self.args.max_steps > 0 else 10**9
            self.create_optimizer_and_scheduler(num_training_steps=max_steps)
            self.model.train()
            self.current_gradient_accumulation_steps = self.args.gradient_accumulation_steps  # set by train()
            self._manual = {"data": iter(self.get_train_dataloader()), "logs": {}}
        captured = self._manual["logs"]
        captured.clear()
        total = 0.0
        for _ in range(self.args.gradient_accumulation_steps):
            try:
                batch = next(self._manual["data"])
            except StopIteration:
                self._manual["data"] = iter(self.get_train_dataloader())
                batch = next(self._manual["data"])
            total += self.training_step(self.model, batch, None).item()
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        logs = {"loss": total / self.args.gradient_accumulation_steps}
        mode_metrics = self._metrics["train"]
        logs.update({k: sum(v) / len(v) for k, v in mode_metrics.items() if v})
        mode_metrics.clear()
        return logs

    # ---- checkpoints --------------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        state = {
            "teacher": self.teacher_name,
            "memory_codes": self.memory_codes,
            "rollouts_scored": self.rollouts_scored,
        }
        save_extra_state(self, trial, STATE_NAME, state)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        state = load_extra_state(self, checkpoint, STATE_NAME)
        if state is None:
            return
        if state["teacher"] != self.teacher_name:
            logger.warning(
                "Checkpoint was trained with teacher %r, resuming with %r", state["teacher"], self.teacher_name
            )
        self.memory_codes = state["memory_codes"]
        self.rollouts_scored = state["rollouts_scored"]


def distillation_kl(reference, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Token-level distillation (Hinton et al. 2015): `T^2 * KL(softmax(t / T) || softmax(s / T))` averaged over the
    reference completion's tokens. `teacher_logits` `(R, P + W, V)` cover the whole reference input; the student's
    `reference.output.logits` `(R, W + 1, V)` its last `W + 1` positions (both read at the `W` positions that
    predict the completion tokens)."""
    width = reference.targets.size(1)
    student = reference.output.logits[:, :-1].float() / temperature
    teacher = teacher_logits[:, -(width + 1) : -1].float() / temperature
    t_logp = teacher.log_softmax(-1)
    kl = (t_logp.exp() * (t_logp - student.log_softmax(-1))).sum(-1)  # (R, W)
    mask = reference.mask.float()
    return temperature**2 * (kl * mask).sum() / mask.sum().clamp(min=1.0)


def _resolve_config(args, teacher_model_id: str | None) -> DeepMimeConfig:
    """The trainer's config: given, the class itself (the seed passes `Config`), or the defaults."""
    if args is None:
        args = DeepMimeConfig("deepmime")
    elif isinstance(args, type):
        args = args("deepmime")
    if not isinstance(args, DeepMimeConfig):
        raise TypeError(f"DeepMimeTrainer needs a DeepMimeConfig, got {type(args).__name__}")
    if teacher_model_id is not None:
        args.teacher_model_name_or_path = teacher_model_id
    return args


def _teacher_and_tokenizer(args: DeepMimeConfig, name: str, teacher_model, processing_class):
    """The frozen teacher and the tokenizer (given, else the teacher's)."""
    if teacher_model is None:
        teacher_model, teacher_tok = load_teacher(name, args.teacher_dtype, args.teacher_warm_start_steps)
    else:
        teacher_model.eval().requires_grad_(False)
        teacher_tok = None
    processing_class = processing_class if processing_class is not None else teacher_tok
    if processing_class is None:
        raise ValueError("Pass `processing_class` (the teacher's tokenizer) along with `teacher_model`")
    return teacher_model, processing_class


def _student(args: DeepMimeConfig, model, tokenizer, teacher_model):
    """The student: given (a model or a path), else created from the config's sizes."""
    if model is None:
        model = create_student(args, tokenizer, teacher_model.config)
    elif isinstance(model, str):
        model = AutoModelForCausalLM.from_pretrained(model)
    if args.hidden_loss_weight > 0 and getattr(model, "teacher_proj", None) is None:
        raise ValueError(
            "hidden_loss_weight > 0 needs a student with a `teacher_proj` (a DeepMime student created with "
            "teacher_hidden_size); set hidden_loss_weight: 0.0 for other students"
        )
    if args.kd_loss_weight > 0:
        student_vocab = model.get_output_embeddings().weight.size(0)
        teacher_vocab = teacher_model.get_output_embeddings().weight.size(0)
        if student_vocab != teacher_vocab:
            raise ValueError(
                f"kd_loss_weight > 0 compares next-token distributions, but the student's vocabulary has "
                f"{student_vocab} entries and the teacher's {teacher_vocab}; set kd_loss_weight: 0.0"
            )
    return model


def _default_dataset(args: DeepMimeConfig):
    """The manual loop's dataset when none is given: `default_dataset`, a `builtin:<task>`."""
    task = parse_builtin_name(args.default_dataset)
    if task is None:
        raise ValueError(f"default_dataset must be `builtin:<task>`, got {args.default_dataset!r}")
    return builtin_dataset(task, 20_000, seed=args.seed, num_test=1)["train"]
