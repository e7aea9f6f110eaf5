"""Policy size, masks at the requested ratio, reconstructor learning, evaluator numbers, baselines, joint run, resume."""

import json
from pathlib import Path

import pytest
import torch
from compression_testutils import tiny_args

from open_r1_ext.compression.baselines import BASELINES, baseline_mask, lm_surprisal
from open_r1_ext.compression.evaluation import (
    SimilarityScorer,
    evaluate_model,
    reconstruct,
    sequence_metrics,
    summarize,
)
from open_r1_ext.compression.models import (
    CompressionModel,
    KeepMaskPolicy,
    PolicySettings,
    ReconstructorSettings,
    build_reconstructor,
    count_parameters,
    kept_tokens,
    num_to_mask,
    reconstruction_logits,
    sample_bernoulli,
    sample_topk,
    topk_mask,
)
from open_r1_ext.compression.trainer import CompressionConfig, CompressionTrainer


def test_default_policy_has_about_one_million_parameters():
    n = count_parameters(KeepMaskPolicy(PolicySettings(vocab_size=CompressionConfig.vocab_size)))
    assert 0.8e6 <= n <= 1.2e6, n


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.4, 0.6, 1.0])
def test_sampled_and_greedy_masks_respect_the_ratio(ratio):
    torch.manual_seed(0)
    scores = torch.randn(8, 64, requires_grad=True)
    k = num_to_mask(64, ratio)
    mask, logp = sample_topk(scores, k)
    assert (mask.sum(1) == k).all()
    assert (topk_mask(scores.detach(), k).sum(1) == k).all()
    assert torch.isfinite(logp).all() and (logp <= 1e-5).all()
    logp.sum().backward()  # the policy gradient reaches the scores
    assert scores.grad is not None and (k == 0 or scores.grad.abs().sum() > 0)


def test_plackett_luce_logp_matches_enumeration():
    # n=3, k=2: P(ordered (i, j)) = e^si / Z * e^sj / (Z - e^si)
    s = torch.tensor([[0.5, -1.0, 2.0]])
    torch.manual_seed(1)
    mask, logp = sample_topk(s, 2)
    # recover the sampled order from the Gumbel draw by recomputing it with the same seed
    torch.manual_seed(1)
    u = torch.rand(s.shape).clamp(1e-9, 1 - 1e-9)
    order = (s - torch.log(-torch.log(u))).argsort(descending=True)[0]
    i, j = order[:2].tolist()
    e = s[0].exp()
    expected = torch.log(e[i] / e.sum() * e[j] / (e.sum() - e[i]))
    assert torch.allclose(logp[0], expected, atol=1e-5)
    assert mask[0, i] and mask[0, j] and mask.sum() == 2


def test_bernoulli_policy_ratio_follows_scores():
    torch.manual_seed(0)
    mask, _ = sample_bernoulli(torch.full((64, 64), 0.0))
    assert abs(mask.float().mean().item() - 0.5) < 0.03


def test_reconstructor_loss_falls_on_a_tiny_corpus(tiny_data):
    from open_r1_ext.compression.data import load_split

    torch.manual_seed(0)
    x = load_split(tiny_data, "train")[:16]
    rec = build_reconstructor(300, 16, ReconstructorSettings(n_layer=2, n_embd=32, n_head=2))
    opt = torch.optim.AdamW(rec.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        mask = torch.rand(x.shape) < 0.4
        logits = reconstruction_logits(rec, x, mask, mask_id=1, sep_id=2)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x, reduction="none")
        loss = (nll * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


def test_evaluator_hand_made_cases():
    x = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    none = torch.zeros_like(x, dtype=torch.bool)
    m = sequence_metrics(x, x.clone(), none)
    assert m["ratio"] == [0.0, 0.0] and m["accuracy"] == [1.0, 1.0]
    everything = torch.ones_like(x, dtype=torch.bool)
    wrong = torch.zeros_like(x)
    m = sequence_metrics(x, wrong, everything)
    assert m["ratio"] == [1.0, 1.0] and m["accuracy"] == [0.0, 0.0] and m["recovery"] == [0.0, 0.0]
    half = torch.tensor([[True, True, False, False], [False, False, False, False]])
    rec = torch.tensor([[5, 0, 7, 8], [9, 10, 11, 12]])
    m = sequence_metrics(x, rec, half)
    assert m["ratio"] == [0.5, 0.0] and m["accuracy"] == [0.75, 1.0] and m["recovery"][0] == 0.5
    assert m["recovery"][1] != m["recovery"][1]  # NaN: nothing removed
    assert kept_tokens(x, half)[0].tolist() == [7, 8]
    assert SimilarityScorer("bow")(["a b c"], ["a b c"]) == [pytest.approx(1.0)]


def test_reconstruct_copies_kept_tokens_and_identity_scores_one(tiny_data):
    from open_r1_ext.compression.data import load_split, load_tokenizer

    tok = load_tokenizer(tiny_data)
    x = load_split(tiny_data, "test")[:4]
    rec = build_reconstructor(len(tok), 16, ReconstructorSettings(n_layer=1, n_embd=16, n_head=2)).eval()
    none = torch.zeros_like(x, dtype=torch.bool)
    assert torch.equal(reconstruct(rec, x, none, tok.mask_token_id, tok.sep_token_id), x)
    model = CompressionModel(
        KeepMaskPolicy(PolicySettings(vocab_size=len(tok), hidden_size=8, num_layers=1)),
        rec,
        mask_id=tok.mask_token_id,
        sep_id=tok.sep_token_id,
        pad_id=tok.pad_token_id,
        seq_len=16,
    )
    res = evaluate_model(model, x, tok, 0.0, methods=("policy",), scorer=SimilarityScorer("bow"))["policy"]
    assert res["ratio"] == [0.0] * 4 and res["accuracy"] == [1.0] * 4
    assert res["similarity"] == [pytest.approx(1.0)] * 4
    res = evaluate_model(model, x, tok, 1.0, methods=("random",))["random"]
    assert res["ratio"] == [1.0] * 4


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_each_baseline_hits_its_ratio(name, ratio):
    torch.manual_seed(0)
    x = torch.randint(3, 50, (6, 16))
    rec = build_reconstructor(50, 16, ReconstructorSettings(n_layer=1, n_embd=16, n_head=2)).eval()
    k = num_to_mask(16, ratio)
    mask = baseline_mask(name, x, k, token_freq=torch.arange(50.0), reconstructor=rec, mask_id=1, sep_id=2)
    assert (mask.sum(1) == k).all()


def test_frequency_and_surprisal_pick_the_right_tokens():
    x = torch.tensor([[10, 3, 10, 4, 5, 10]])
    freq = torch.zeros(20)
    freq[10] = 100.0
    assert baseline_mask("frequency", x, 3, token_freq=freq)[0].tolist() == [True, False, True, False, False, True]
    rec = build_reconstructor(20, 6, ReconstructorSettings(n_layer=1, n_embd=16, n_head=2)).eval()
    s = lm_surprisal(rec, x, 1, 2)
    mask = baseline_mask("surprisal", x, 2, reconstructor=rec, mask_id=1, sep_id=2)
    assert set(mask[0].nonzero().flatten().tolist()) == set(s[0].topk(2, largest=False).indices.tolist())
    with pytest.raises(ValueError, match="known baselines"):
        baseline_mask("entropy", x, 2)


def _trainer(tmp_path, tiny_data, **kw):
    args = tiny_args(tmp_path, tiny_data, **kw)
    built = CompressionTrainer.build_model_and_data(None, args, None)
    return CompressionTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        processing_class=built["processing_class"],
    )


def test_short_joint_run_compresses_strictly_between_0_and_1(tmp_path, tiny_data):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, max_steps=4)
    policy_before = [p.clone() for p in trainer.model.policy.parameters()]
    recon_before = [p.clone() for p in trainer.model.reconstructor.parameters()]
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert logs and all(0.0 < h["compression/ratio"] < 1.0 for h in logs)
    assert any(not torch.equal(a, b) for a, b in zip(policy_before, trainer.model.policy.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(recon_before, trainer.model.reconstructor.parameters()))
    assert int(trainer.model.steps_seen) == 4
    from open_r1_ext.compression.data import load_split

    x = load_split(tiny_data, "test")[:4]
    res = evaluate_model(trainer.model, x, trainer.processing_class, 0.4, methods=("policy",))["policy"]
    assert all(0.0 < r < 1.0 for r in res["ratio"])


def test_lambda_mode_runs_and_reports_its_own_ratio(tmp_path, tiny_data):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, ratio_control="lambda", distortion="error", max_steps=2)
    trainer.train()
    ratios = [h["compression/ratio"] for h in trainer.state.log_history if "reward" in h]
    assert all(0.0 < r < 1.0 for r in ratios)  # a zero-initialised head removes each token with p = 0.5


def test_resume_restores_policy_reconstructor_optimizer_and_state(tmp_path, tiny_data):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    ckpt = Path(trainer.args.output_dir) / "checkpoint-2"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.pt").exists()
    assert (ckpt / "compression_model.json").exists()

    saved = CompressionModel.from_folder(ckpt)
    assert int(saved.steps_seen) == 2 and saved.token_freq.sum() > 0

    torch.manual_seed(0)
    resumed = _trainer(tmp_path, tiny_data, max_steps=4, save_strategy="no")
    # check what resume loads, before any further step: wrap _load_optimizer_and_scheduler
    seen = {}
    original = resumed._load_optimizer_and_scheduler

    def spy(checkpoint):
        original(checkpoint)
        seen["steps_seen"] = int(resumed.model.steps_seen)
        seen["policy"] = {k: v.clone() for k, v in resumed.model.policy.state_dict().items()}
        seen["recon"] = {k: v.clone() for k, v in resumed.model.reconstructor.state_dict().items()}
        seen["opt_steps"] = [s["step"].item() for s in resumed.optimizer.state_dict()["state"].values()]
        seen["lrs"] = [g["lr"] for g in resumed.optimizer.param_groups]

    resumed._load_optimizer_and_scheduler = spy
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert seen["steps_seen"] == 2
    for k, v in saved.policy.state_dict().items():
        assert torch.equal(seen["policy"][k], v), k
    for k, v in saved.reconstructor.state_dict().items():
        assert torch.equal(seen["recon"][k], v), k
    assert seen["opt_steps"] and all(s == 2 for s in seen["opt_steps"])
    assert len(seen["lrs"]) == 2  # policy and reconstructor groups
    assert resumed.state.global_step == 4 and int(resumed.model.steps_seen) == 4
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_config_validation_quotes_bad_values(tmp_path):
    with pytest.raises(ValueError, match="'sometimes'"):
        CompressionConfig(output_dir=str(tmp_path), ratio_control="sometimes", use_cpu=True)
    with pytest.raises(ValueError, match="1.5"):
        CompressionConfig(output_dir=str(tmp_path), target_ratio=1.5, use_cpu=True)


def test_trainer_refuses_reward_funcs(tmp_path, tiny_data):
    args = tiny_args(tmp_path, tiny_data)
    built = CompressionTrainer.build_model_and_data(None, args, None)
    with pytest.raises(ValueError, match="reward_funcs: \\[\\]"):
        CompressionTrainer(model=built["model"], reward_funcs=[lambda **k: 0], args=args)


def test_summary_has_tests_against_each_baseline():
    runs = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        run = {}
        for m, base in (("policy", 0.8), ("random", 0.5)):
            acc = (base + 0.05 * torch.rand(20, generator=g)).tolist()
            run[m] = {"ratio": [0.4] * 20, "accuracy": acc, "recovery": acc, "similarity": acc}
        runs.append(run)
    s = summarize(runs)
    t = s["tests_vs_policy"]["random"]
    assert t["accuracy_diff"] == pytest.approx(0.3, abs=0.03) and t["p_paired_t_sequences"] < 1e-6
    assert t["bootstrap_ci95"][0] > 0.2 and t["n_seeds"] == 3
    assert s["methods"]["policy"]["ratio"]["mean"] == pytest.approx(0.4)


def test_pretrained_gpt2_from_a_local_folder(tmp_path, tiny_data):
    """`model_name_or_path` = a local GPT-2 folder: its tokenizer prepares the data, its weights are loaded."""
    from types import SimpleNamespace

    from transformers import GPT2Config, GPT2LMHeadModel

    from open_r1_ext.compression.data import load_tokenizer

    tok = load_tokenizer(tiny_data)
    folder = tmp_path / "gpt2"
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=40, n_embd=16, n_layer=1, n_head=2))
    gpt2.save_pretrained(folder)
    tok.save_pretrained(folder)
    args = tiny_args(tmp_path, tmp_path / "pretrained_data")
    plays = tmp_path / "plays"
    plays.mkdir()
    (plays / "a.txt").write_text("To be, or not to be, that is the question. " * 40)
    (plays / "b.txt").write_text("Whether 'tis nobler in the mind to suffer. " * 40)
    args.texts_folder = str(plays)
    built = CompressionTrainer.build_model_and_data(None, args, SimpleNamespace(model_name_or_path=str(folder)))
    rec = built["model"].reconstructor
    assert torch.equal(rec.transformer.wte.weight, gpt2.transformer.wte.weight)
    assert len(built["processing_class"]) == len(tok)


@pytest.mark.parametrize("label_names", [None, ["input_ids"]])
def test_evaluate_logs_the_objective_under_eval_keys(tmp_path, tiny_data, label_names):
    """`evaluate()` scores the joint objective on the eval split and logs it as `eval_*`, never under training keys
    (with `label_names` set, `Trainer` already went through `compute_loss`; without, it only ran the policy)."""
    from open_r1_ext.compression.data import to_dataset_dict

    torch.manual_seed(0)
    args = tiny_args(tmp_path, tiny_data, per_device_eval_batch_size=4, label_names=label_names)
    built = CompressionTrainer.build_model_and_data(None, args, None)
    trainer = CompressionTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        eval_dataset=to_dataset_dict(tiny_data)["validation"],
        processing_class=built["processing_class"],
    )
    metrics = trainer.evaluate()
    entry = trainer.state.log_history[-1]
    assert "eval_loss" in metrics
    for key in ("reward", "compression/ratio", "compression/distortion", "losses/reconstruction"):
        assert f"eval_{key}" in entry, (key, sorted(entry))
        assert key not in entry, (key, sorted(entry))
    assert entry["eval_compression/ratio"] == pytest.approx(num_to_mask(16, 0.4) / 16)
    assert int(trainer.model.steps_seen) == 0  # evaluation is not a joint training step


def test_log_averages_without_nan_and_prefixes_eval(tmp_path, tiny_data):
    trainer = _trainer(tmp_path, tiny_data)
    trainer.model.train()
    trainer._metrics["train"]["reward"] += [1.0, float("nan"), 3.0]
    trainer._metrics["train"]["compression/ratio"] += [float("nan")]
    trainer.log({})
    assert trainer.state.log_history[-1]["reward"] == pytest.approx(2.0)
    assert trainer.state.log_history[-1]["compression/ratio"] is None  # no valid value: None, not NaN
    trainer.model.eval()
    trainer._metrics["eval"]["reward"] += [0.5]
    trainer.log({"eval_loss": 1.0})
    entry = trainer.state.log_history[-1]
    assert entry["eval_loss"] == 1.0 and entry["eval_reward"] == 0.5 and "reward" not in entry
    assert not trainer._metrics["train"] and not trainer._metrics["eval"]


def test_args_default_to_compression_config(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output_dir is relative
    built = CompressionTrainer.build_model_and_data(None, tiny_args(tmp_path, tiny_data), None)
    trainer = CompressionTrainer(model=built["model"])
    assert type(trainer.args) is CompressionConfig and trainer.args.output_dir == "runs/compression"
    assert CompressionTrainer._name == "Compression"
    with pytest.raises(TypeError, match="needs a CompressionConfig"):
        CompressionTrainer(model=built["model"], args=tiny_args(tmp_path, tiny_data).to_dict())
