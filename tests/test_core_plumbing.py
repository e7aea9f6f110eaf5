"""The shared plumbing in `core/`: extra checkpoint state, NaN-safe metric averaging, reward splicing, loading."""

import math
from types import SimpleNamespace

import pytest

from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.metrics import average_metrics
from open_r1_ext.core.rewards import splice_reward


def fake_trainer(out, rank=0, world=1, step=3):
    acc = SimpleNamespace(process_index=rank, num_processes=world, is_main_process=rank == 0)
    return SimpleNamespace(
        accelerator=acc, state=SimpleNamespace(global_step=step), _get_output_dir=lambda trial=None: str(out)
    )


def test_extra_state_round_trip_shared_and_per_process(tmp_path):
    t0, t1 = fake_trainer(tmp_path, 0, 2), fake_trainer(tmp_path, 1, 2)
    assert save_extra_state(t1, None, "counters", {"n": 1}) is None  # shared state: the main process writes it
    path = save_extra_state(t0, None, "counters", {"n": 5, "xs": [1.0, 2.0]})
    assert path.endswith("checkpoint-3/open_r1_ext_counters.pt")
    ckpt = str(tmp_path / "checkpoint-3")
    assert load_extra_state(t1, ckpt, "counters") == {"n": 5, "xs": [1.0, 2.0]}  # every process reads it
    for t, value in ((t0, "a"), (t1, "b")):
        save_extra_state(t, None, "buffer", {"v": value}, per_process=True)
    assert load_extra_state(t0, ckpt, "buffer", per_process=True) == {"v": "a"}
    assert load_extra_state(t1, ckpt, "buffer", per_process=True) == {"v": "b"}
    assert load_extra_state(t0, None, "buffer", per_process=True) is None


def test_missing_state_warns_and_other_world_size_is_refused(tmp_path, caplog):
    t = fake_trainer(tmp_path, 0, 2)
    save_extra_state(t, None, "buffer", {"v": 1}, per_process=True)
    ckpt = str(tmp_path / "checkpoint-3")
    with caplog.at_level("WARNING"):
        assert load_extra_state(t, ckpt, "nothing_here") is None
    assert "nothing_here state restarts empty" in caplog.text
    with pytest.raises(ValueError, match="written by 2 processes; resuming with 1"):
        load_extra_state(fake_trainer(tmp_path, 0, 1), ckpt, "buffer", per_process=True)


def test_average_metrics_skips_nan_and_prefixes_eval():
    vals = {"a": [1.0, float("nan"), 3.0], "b": [float("nan")], "c": [2.0]}
    assert average_metrics(vals, "train") == {"a": 2.0, "b": None, "c": 2.0}
    out = average_metrics(vals, "eval")
    assert set(out) == {"eval_a", "eval_b", "eval_c"} and out["eval_a"] == 2.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


def test_splice_reward_replaces_the_placeholder_or_appends_with_weight():
    def placeholder(completions, **kw):
        raise RuntimeError

    def other(completions, **kw):
        return [0.0]

    def real(completions, **kw):
        return [1.0]

    assert splice_reward([other, placeholder], placeholder, real, [0.5, 2.0]) == ([other, real], [0.5, 2.0])
    assert splice_reward([other], placeholder, real, [0.5]) == ([other, real], [0.5, 1.0])
    assert splice_reward(None, placeholder, real) == ([real], None)
    assert splice_reward(other, placeholder, real) == ([other, real], None)
