"""DeepMime: distil a teacher causal LM into a small memory/MoE student with CE + GRPO + hidden-state losses.

Seed: `../shared/seeds/000_2452fced7af1b1cb.txt` (DeepMime). The public version is one 4,796-line file with no
results; here it is TokenScavenger's trainer (`TokenScavengerMixin`: two-level advantages on gathered rewards,
advantage clamp, CE anchor on reference completions, RL warm-up schedule) plus what distillation adds. How
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
4. **Loss** (`_compute_loss`, a wrapper over TokenScavenger's): `w_grpo(step) * GRPO + ce_loss_weight * CE(ref)
   + hidden_loss_weight * MSE(teacher_proj(h_student), LN(h_teacher)) + balance_loss_weight * MoE balance`. The CE,
   hidden and balance terms come from one student forward on the reference completion (`_ce_loss` is overridden to
   compute all three); the teacher's last hidden state on the same tokens is layer-normalised (no affine) so the
   MSE does not scale with the teacher's activation size. Every term is logged under `deepmime/`.
5. **Manual loop** (`train_step`): the seed's `DeepMimeTrainer(config=..., teacher_model_id=..., student_model=None)`
   then `trainer.train_step()` runs one optimizer step of the same update `train()` makes.
6. **Checkpoints** carry `deepmime_rank{i}.pt` (teacher name, memory codes, rollouts scored), beside the carousel.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from open_r1_ext.core.rewards import REWARD_FUNCS, completion_text, register_reward
from open_r1_ext.core.tiny import TinyModelSettings, build_builtin, parse_builtin_name
from open_r1_ext.token_adaptive.trainer import TokenAdaptiveGRPOTrainer
from open_r1_ext.token_scavenger.trainer import TokenScavengerConfig, TokenScavengerMixin

from .encoders import init_memory_from_teacher
from .model import DeepMimeStudentConfig, DeepMimeStudentForCausalLM


logger = logging.getLogger(__name__)

STATE_FILE = "deepmime_rank{rank}.pt"
TEACHER_PRESETS = {
    "1.3b": "deepseek-ai/deepseek-coder-1.3b-base",
    "33b": "deepseek-ai/deepseek-coder-33b-base",
}
MEMORY_INITS = ("teacher_weights", "random")


@dataclass
class DeepMimeConfig(TokenScavengerConfig):
    """`TokenScavengerConfig` (hence `GRPOConfig`) plus DeepMime. Defaults are the seed's where it gives one."""

    # ---- teacher
    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Teacher causal LM: hub id, local path, or `builtin:<task>`. Overrides teacher_arch."},
    )
    teacher_arch: str | None = field(
        default="1.3b",
        metadata={"help": f"Teacher preset when no teacher_model_name_or_path is given: {TEACHER_PRESETS}."},
    )
    teacher_dtype: str = field(default="auto", metadata={"help": "Teacher dtype: auto, float32, bfloat16 or float16."})
    teacher_warm_start_steps: int = field(
        default=600, metadata={"help": "Supervised warm-start steps of a `builtin:<task>` teacher (cached)."}
    )
    # ---- student (auto-created when no model is given)
    student_hidden_size: int = field(default=1024, metadata={"help": "Auto-created student: hidden size."})
    student_num_layers: int = field(default=6, metadata={"help": "Auto-created student: transformer layers."})
    student_num_heads: int = field(default=4, metadata={"help": "Auto-created student: attention heads."})
    student_intermediate_size: int | None = field(
        default=None, metadata={"help": "Auto-created student: MLP width (None: 8/3 * hidden rounded to 64)."}
    )
    student_max_position_embeddings: int = field(
        default=2048, metadata={"help": "Auto-created student: maximum sequence length."}
    )
    memory_slots: int = field(default=64, metadata={"help": "Key-value memory slots of the student."})
    memory_latent_dim: int = field(default=128, metadata={"help": "Latent dimension of memory keys/values."})
    num_experts: int = field(default=4, metadata={"help": "Experts reading the memory."})
    num_experts_per_tok: int = field(default=2, metadata={"help": "Experts active per token (top-k routing)."})
    memory_init: str = field(
        default="teacher_weights",
        metadata={"help": f"How a fresh student's memory starts, one of {MEMORY_INITS} (see encoders.py)."},
    )
    # ---- losses
    hidden_loss_weight: float = field(
        default=0.275, metadata={"help": "Weight of the MSE between projected student and teacher hidden states."}
    )
    balance_loss_weight: float = field(
        default=0.01, metadata={"help": "Weight of the MoE load-balancing loss (Mixtral's; 2.0 at balance)."}
    )
    default_dataset: str = field(
        default="builtin:running_sum",
        metadata={"help": "Dataset of the manual loop when no train_dataset is given (`builtin:<task>`)."},
    )
    # ---- changed defaults
    num_generations: int | None = field(default=4, metadata={"help": "Rollouts per prompt (seed: group of 4)."})
    carousel_weight: float = field(
        default=0.0, metadata={"help": "TokenScavenger's carousel (off: the teacher's reward is never >= 1)."}
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate (seed: 5e-4)."})

    def __post_init__(self):
        super().__post_init__()
        if self.teacher_model_name_or_path is None and self.teacher_arch not in TEACHER_PRESETS:
            raise ValueError(
                f"teacher_arch must be one of {sorted(TEACHER_PRESETS)} when no teacher_model_name_or_path is "
                f"given, got {self.teacher_arch!r}"
            )
        if self.memory_init not in MEMORY_INITS:
            raise ValueError(f"memory_init must be one of {MEMORY_INITS}, got {self.memory_init!r}")
        if self.teacher_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"teacher_dtype must be auto, float32, bfloat16 or float16, got {self.teacher_dtype!r}")
        for name in ("hidden_loss_weight", "balance_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok must be in [1, num_experts={self.num_experts}], got {self.num_experts_per_tok!r}"
            )

    def get_teacher_model_id(self) -> str:
        """The teacher's hub id, local path or `builtin:<task>` (the seed's `Config.get_teacher_model_id()`)."""
        return self.teacher_model_name_or_path or TEACHER_PRESETS[self.teacher_arch]


def resolve_teacher_path(name: str, warm_start_steps: int = 600) -> str:
    """A hub id or path as given; `builtin:<task>` -> the cached warm-started tiny model's folder."""
    task = parse_builtin_name(name)
    if task is None:
        return name
    return str(build_builtin(TinyModelSettings(task=task, warm_start_steps=warm_start_steps)))


def load_teacher(name: str, dtype: str = "auto", warm_start_steps: int = 600):
    """`(model, tokenizer)` of a teacher, frozen and in eval mode."""
    path = resolve_teacher_path(name, warm_start_steps)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
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


class _RawGRPOLoss:
    """Sits just above GRPOTrainer in the MRO to keep the un-weighted GRPO loss for logging."""

    def _compute_loss(self, model, inputs):
        loss = super()._compute_loss(model, inputs)
        self._mime_grpo_loss = loss.detach()
        return loss


class DeepMimeTrainer(TokenScavengerMixin, _RawGRPOLoss, TokenAdaptiveGRPOTrainer):
    """DeepMime distillation trainer; see the module docstring for what changes w.r.t. `GRPOTrainer` and where.

    Hooks: `_ce_loss` (one student forward for CE + hidden MSE + balance), `_compute_loss` (adds the hidden and
    balance terms, logs every term), `_generate_and_score_completions` (reference targets even when
    `ce_loss_weight` is 0), `_save_checkpoint` / `_load_optimizer_and_scheduler` (DeepMime state); the rest is
    TokenScavenger's and TRL's.
    """

    _tag_names = ["trl", "grpo", "deepmime", "open-r1-ext"]
    _name = "DeepMime"
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
        args = args if args is not None else config
        if args is None:
            args = DeepMimeConfig("deepmime")
        elif isinstance(args, type):  # the seed passes the Config class itself
            args = args("deepmime")
        if not isinstance(args, DeepMimeConfig):
            raise TypeError(f"DeepMimeTrainer needs a DeepMimeConfig, got {type(args).__name__}")
        if teacher_model_id is not None:
            args.teacher_model_name_or_path = teacher_model_id
        model = model if model is not None else student_model

        # Teacher
        self.teacher_name = args.get_teacher_model_id()
        if teacher_model is None:
            teacher_model, teacher_tok = load_teacher(
                self.teacher_name, args.teacher_dtype, args.teacher_warm_start_steps
            )
        else:
            teacher_model.eval().requires_grad_(False)
            teacher_tok = None
        processing_class = processing_class if processing_class is not None else teacher_tok
        if processing_class is None:
            raise ValueError("Pass `processing_class` (the teacher's tokenizer) along with `teacher_model`")

        # Student
        if model is None:
            model = create_student(args, processing_class, teacher_model.config)
        elif isinstance(model, str):
            model = AutoModelForCausalLM.from_pretrained(model)
        if args.hidden_loss_weight > 0 and getattr(model, "teacher_proj", None) is None:
            raise ValueError(
                "hidden_loss_weight > 0 needs a student with a `teacher_proj` (a DeepMime student created with "
                "teacher_hidden_size); set hidden_loss_weight: 0.0 for other students"
            )
        self.memory_codes = None
        fresh = isinstance(model, DeepMimeStudentForCausalLM) and model.config.memory_initialized_from is None
        if fresh and args.memory_init == "teacher_weights":
            self.memory_codes = init_memory_from_teacher(model, teacher_model, self.teacher_name, seed=args.seed)

        # Reward: the teacher's log-prob, in place of the placeholder or appended with weight 1.0
        self.teacher_reward = TeacherLogProbReward(teacher_model, processing_class)
        funcs = (
            [] if reward_funcs is None else list(reward_funcs) if isinstance(reward_funcs, list) else [reward_funcs]
        )
        placeholder = REWARD_FUNCS["teacher_logprob"]
        if placeholder in funcs:
            funcs = [self.teacher_reward if f is placeholder else f for f in funcs]
        else:
            funcs.append(self.teacher_reward)
            if args.reward_weights is not None and len(args.reward_weights) == len(funcs) - 1:
                args.reward_weights = [*args.reward_weights, 1.0]

        if train_dataset is None:
            from open_r1_ext.core.data import builtin_dataset

            task = parse_builtin_name(args.default_dataset)
            if task is None:
                raise ValueError(f"default_dataset must be `builtin:<task>`, got {args.default_dataset!r}")
            train_dataset = builtin_dataset(task, 20_000, seed=args.seed, num_test=1)["train"]

        super().__init__(model, funcs, args, train_dataset, eval_dataset, processing_class, *pos, **kwargs)
        self.teacher = teacher_model.to(self.accelerator.device)
        self.rollouts_scored = 0
        self._mime_terms = None
        self._mime_grpo_loss = None
        self._manual = None

    # ---- launch script ------------------------------------------------------------------------------------------

    @classmethod
    def build_model_and_data(cls, script_args, training_args, model_args) -> dict:
        """The student (`model_name_or_path` when given: any causal LM or a `deepmime_student` checkpoint; else
        auto-created), the teacher's tokenizer, and the dataset (`core.data`)."""
        from open_r1_ext.core.data import builtin_dataset, load_any, to_prompt_format

        path = resolve_teacher_path(training_args.get_teacher_model_id(), training_args.teacher_warm_start_steps)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model_args.model_name_or_path:
            model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path)
        else:
            model = create_student(training_args, tokenizer, AutoConfig.from_pretrained(path))
        task = parse_builtin_name(script_args.dataset_name)
        if task is not None:
            ds = builtin_dataset(
                task,
                script_args.builtin_num_train,
                seed=script_args.builtin_data_seed,
                num_test=max(script_args.builtin_eval_samples, 1),
            )
        else:
            ds = load_any(script_args.dataset_name, script_args.dataset_config)
        return {
            "model": model,
            "processing_class": tokenizer,
            "dataset": to_prompt_format(ds, script_args.prompt_column, script_args.system_prompt),
        }

    def summary_results(self) -> dict:
        """Held-out accuracy of the student on a built-in task (rows carry `task`), for the launch script."""
        row = self.train_dataset[0]
        if "task" not in row:
            return {}
        from open_r1_ext.core.evaluation import evaluate_task

        acc = evaluate_task(self.model, self.processing_class, row["task"], n=128, temperature=0.0)["pass@1"]
        return {"accuracy_after_greedy": acc}

    # ---- rewards and reference targets --------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        needs_reference = self.args.hidden_loss_weight > 0 or self.args.balance_loss_weight > 0
        if needs_reference and "ce_rows" not in output:
            output.update(self._reference_targets(inputs, output["completion_ids"].device))
        if self.model.training:
            self.rollouts_scored += len(inputs) * self.accelerator.num_processes
        return output

    # ---- losses -------------------------------------------------------------------------------------------------

    def _mime_forward(self, model, inputs) -> dict[str, torch.Tensor]:
        """CE, hidden MSE and balance loss from one student forward on the reference text of `ce_rows`."""
        rows = inputs["ce_rows"]
        zero = torch.zeros((), device=rows.device)
        if not bool(rows.any()):
            return {"ce": zero, "hidden_mse": zero, "balance": zero}
        comp, comp_mask = inputs["ce_completion_ids"][rows], inputs["ce_completion_mask"][rows]
        width = int(comp_mask.sum(1).max().item())
        comp, comp_mask = comp[:, :width], comp_mask[:, :width]
        input_ids = torch.cat([inputs["prompt_ids"][rows], comp], dim=1)
        attention = torch.cat([inputs["prompt_mask"][rows], comp_mask], dim=1)
        out = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=width + 1)
        logits = out.logits[:, :-1]
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), comp.reshape(-1), reduction="none")
        mask = comp_mask.reshape(-1).float()
        ce = (ce * mask).sum() / mask.sum().clamp(min=1.0)
        terms = {"ce": ce, "hidden_mse": zero, "balance": zero}
        if getattr(out, "aux_loss", None) is not None:
            terms["balance"] = out.aux_loss
        proj = getattr(model, "teacher_proj", None)
        if proj is not None and self.args.hidden_loss_weight > 0:
            with torch.no_grad():
                target = self.teacher(input_ids=input_ids, attention_mask=attention, output_hidden_states=True)
                target = target.hidden_states[-1][:, -width:].float()
                target = F.layer_norm(target, target.shape[-1:])
            pred = proj(out.last_hidden_state[:, -width:]).float()
            m = comp_mask.unsqueeze(-1).float()
            terms["hidden_mse"] = (((pred - target) ** 2) * m).sum() / (m.sum() * target.size(-1)).clamp(min=1.0)
        return terms

    def _ce_loss(self, model, inputs) -> torch.Tensor:
        self._mime_terms = self._mime_forward(model, inputs)
        return self._mime_terms["ce"]

    def _compute_loss(self, model, inputs):
        mode = "train" if self.model.training else "eval"
        self._mime_terms, self._mime_grpo_loss = None, None
        loss = super()._compute_loss(model, inputs)
        args = self.args
        terms = self._mime_terms
        if terms is None and "ce_rows" in inputs:  # ce_loss_weight == 0: the CE forward did not run
            terms = self._mime_forward(self.accelerator.unwrap_model(model), inputs)
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        metrics = self._metrics[mode]
        if terms is not None:
            loss = (
                loss
                + (args.hidden_loss_weight * terms["hidden_mse"] + args.balance_loss_weight * terms["balance"])
                / accumulation
            )
            for name in ("ce", "hidden_mse", "balance"):
                metrics[f"deepmime/{name}_loss"].append(self.accelerator.gather(terms[name].detach()).mean().item())
        if self._mime_grpo_loss is not None:
            metrics["deepmime/grpo_loss"].append(self.accelerator.gather(self._mime_grpo_loss).mean().item())
        self._mime_terms = None
        return loss

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

    def _mime_state(self) -> dict:
        return {
            "teacher": self.teacher_name,
            "memory_codes": self.memory_codes,
            "rollouts_scored": self.rollouts_scored,
        }

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(folder, exist_ok=True)
        torch.save(self._mime_state(), os.path.join(folder, STATE_FILE.format(rank=self.accelerator.process_index)))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE.format(rank=self.accelerator.process_index))
        if not os.path.exists(path):
            logger.warning("No %s in %s: DeepMime counters restart from zero", os.path.basename(path), checkpoint)
            return
        state = torch.load(path, weights_only=True)
        if state["teacher"] != self.teacher_name:
            logger.warning(
                "Checkpoint was trained with teacher %r, resuming with %r", state["teacher"], self.teacher_name
            )
        self.memory_codes = state["memory_codes"]
        self.rollouts_scored = state["rollouts_scored"]
