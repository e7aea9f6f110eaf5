"""The health monitor, calibrated on real training: quiet on the CE twin, firing on a collapsing game run.

Both runs train the same tiny GPT-2 on the same blocks for 100 steps (a few seconds each). The collapsing run is
the exhaustive game with GRPO's `std` normalisation, whose gradient is CE's scaled by sqrt(pi(y) / (1 - pi(y)))
(`char_rl/game.py`): its confidence runs far ahead of its accuracy. The seed's monitor (ECE > 0.1 and "confidence
up while accuracy flat") warned on the CE twin too, because a model from random weights is under-confident for
its first steps and sharpens on accuracy plateaus; and std / mean of the gradient norm flagged CE's early spike.
"""

import pytest
from test_char_trainer import _args, _trainer


def _run(tmp_path, play_text, **kw):
    trainer = _trainer(_args(tmp_path, max_steps=100, health_window=30, logging_steps=10, **kw), play_text)
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def ce_twin(tmp_path_factory, play_text):
    return _run(tmp_path_factory.mktemp("ce"), play_text, objective="ce")


def test_health_monitor_is_quiet_on_the_ce_twin(ce_twin):
    assert ce_twin.health.warnings == {}
    logged = [h for h in ce_twin.state.log_history if "health/overconfidence_window" in h]
    assert logged and max(h["health/overconfidence_window"] for h in logged) < 0.1
    assert max(h["health/grad_norm_cv"] for h in logged) < 1.0


def test_health_monitor_fires_on_a_collapsing_run(tmp_path, play_text, ce_twin):
    trainer = _run(tmp_path, play_text, advantage_norm="std")
    assert trainer.health.warnings.get("overconfidence", 0) > 0
    last = [h for h in trainer.state.log_history if "health/overconfidence_window" in h][-1]
    assert last["health/overconfidence_window"] > 0.3  # sure of itself, right a fraction of that often
    assert trainer.summary_results()["val_ce"] > ce_twin.summary_results()["val_ce"]  # and it is worse for it
