"""The comparison protocol's statistics on synthetic data: known effects are found, identical arms are not."""

import random

import pytest

from open_r1_ext.core import protocol


def test_known_effect_is_found_with_an_interval_that_excludes_zero():
    rng = random.Random(0)
    base = [0.40 + rng.gauss(0, 0.03) for _ in range(6)]
    arm = [b + 0.05 + rng.gauss(0, 0.01) for b in base]
    iv = protocol.paired_interval(arm, base)
    assert iv.n == 6 and iv.low > 0 and iv.low < 0.05 < iv.high
    assert iv.verdict == "better"
    assert protocol.paired_interval(base, arm).verdict == "worse"


def test_identical_inputs_give_an_interval_that_covers_zero():
    xs = [0.3, 0.5, 0.45, 0.2, 0.6]
    iv = protocol.paired_interval(xs, list(xs))
    assert iv.mean == 0 and iv.low <= 0 <= iv.high
    assert iv.verdict == "no difference"


def test_interval_has_its_nominal_coverage_under_no_effect():
    """A/A pairs with seed noise: the 95 % interval covers 0 about 95 % of the time (not 100 %, not 80 %)."""
    rng = random.Random(1)
    trials, covered = 2000, 0
    for _ in range(trials):
        base = [rng.gauss(0.4, 0.05) for _ in range(5)]
        aa = [b + rng.gauss(0, 0.03) for b in base]
        iv = protocol.paired_interval(aa, base)
        covered += iv.low <= 0 <= iv.high
    assert 0.93 < covered / trials < 0.97


def test_student_t_width_for_five_seeds():
    # differences 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776
    iv = protocol.paired_interval([1, 2, 3, 4, 5], [0] * 5)
    assert iv.mean == 3
    assert iv.high - iv.mean == pytest.approx(2.7764 * (2.5**0.5) / 5**0.5, rel=1e-3)


def test_missing_pairs_are_dropped_and_one_seed_is_not_a_verdict():
    iv = protocol.paired_interval([0.5, float("nan"), 0.7], [0.4, 0.4, float("nan")])
    assert iv.n == 1 and iv.verdict == "too few seeds"
    with pytest.raises(ValueError):
        protocol.paired_interval([1.0], [1.0, 2.0])


def run(points):
    """A results.json payload whose held-out curve is [(tokens, pass@1), ...] at steps 0, 10, 20, ..."""
    return {
        "eval_curve": [
            {"step": 10 * i, "generated_tokens": t, "pass@1": a, "greedy": a} for i, (t, a) in enumerate(points)
        ],
        "generated_tokens": points[-1][0],
        "train_seconds": 10.0,
        "curve": [{"step": 10 * (len(points) - 1)}],
        "accuracy_before": points[0][1],
    }


def test_tokens_to_threshold_interpolates_and_reports_never():
    r = run([(0, 0.1), (100, 0.3), (200, 0.5)])
    assert protocol.tokens_to_threshold(r, 0.4) == pytest.approx(150)
    assert protocol.tokens_to_threshold(r, 0.3) == pytest.approx(100)
    assert protocol.tokens_to_threshold(r, 0.05) == 0
    assert protocol.tokens_to_threshold(r, 0.6) is None


def test_area_under_curve_is_a_mean_accuracy_over_the_budget():
    flat = run([(0, 0.3), (100, 0.3), (200, 0.3)])
    assert protocol.area_under_curve(flat, 200) == pytest.approx(0.3)
    ramp = run([(0, 0.0), (200, 0.4)])
    assert protocol.area_under_curve(ramp, 200) == pytest.approx(0.2)
    assert protocol.area_under_curve(ramp, 100) == pytest.approx(0.1)  # clipped at the budget
    short = run([(0, 0.0), (100, 0.4)])  # a run that used fewer tokens holds its last value
    assert protocol.area_under_curve(short, 200) == pytest.approx((0.2 * 100 + 0.4 * 100) / 200)


def test_summarise_pairs_by_seed_and_measures_tokens_ratio():
    base = {s: run([(0, 0.1), (100, 0.2 + 0.01 * s), (200, 0.3 + 0.01 * s)]) for s in range(5)}
    # the arm reaches the same accuracy with half the tokens, then keeps going
    arm = {s: run([(0, 0.1), (50, 0.2 + 0.01 * s), (100, 0.3 + 0.01 * s + 0.001 * s), (200, 0.35)]) for s in range(5)}
    same = {s: run([(0, 0.1), (100, 0.2 + 0.01 * s), (200, 0.3 + 0.01 * s)]) for s in range(5)}
    rows = {r.name: r for r in protocol.summarise({"base": base, "arm": arm, "same": same}, "base")}
    assert rows["base"].delta_final.mean == 0
    assert rows["same"].delta_final.verdict == "no difference"
    assert rows["arm"].delta_auc.verdict == "better"
    # threshold = baseline's final - 0.02; the baseline needs 180 tokens, the arm about 90
    assert rows["arm"].tokens_ratio_median == pytest.approx(0.5, abs=0.02)
    assert rows["arm"].reached == 5
    never = {s: run([(0, 0.1), (200, 0.1)]) for s in range(5)}
    rows = {r.name: r for r in protocol.summarise({"base": base, "never": never}, "base")}
    assert rows["never"].reached == 0 and rows["never"].tokens_ratio_median is None
    assert rows["never"].delta_final.verdict == "worse"
    # a seed that never reaches counts as infinitely many tokens: 4 of 5 reached -> the median is still finite
    some = {s: (never[s] if s == 0 else arm[s]) for s in range(5)}
    rows = {r.name: r for r in protocol.summarise({"base": base, "some": some}, "base")}
    assert rows["some"].reached == 4 and rows["some"].tokens_ratio_median == pytest.approx(0.5, abs=0.03)


def test_final_accuracy_is_the_mean_of_the_last_evaluations():
    r = run([(0, 0.1), (100, 0.2), (200, 0.4), (300, 0.5), (400, 0.6)])
    assert protocol.final_accuracy(r) == pytest.approx((0.4 + 0.5 + 0.6) / 3)
    assert protocol.final_accuracy(r, window=1) == pytest.approx(0.6)
    assert protocol.final_accuracy(run([(0, 0.1), (100, 0.3)])) == pytest.approx(0.2)  # shorter curve: all of it
    assert protocol.final_accuracy({"eval_curve": []}) is None


def test_accuracy_at_interpolates_inside_the_curve_only():
    r = run([(0, 0.1), (100, 0.3), (200, 0.5)])
    assert protocol.accuracy_at(r, 50) == pytest.approx(0.2)
    assert protocol.accuracy_at(r, 200) == pytest.approx(0.5)
    assert protocol.accuracy_at(r, 250) is None


def test_equal_tokens_compares_at_the_smaller_budget():
    # the arm samples half the tokens per step; per token both learn at the same rate (accuracy = tokens / 1000)
    base = run([(t, t / 1000) for t in (0, 100, 200, 300, 400)])
    arm = run([(t, t / 1000) for t in (0, 50, 100, 150, 200)])
    a, b = protocol.equal_tokens_pair(arm, base)
    assert a == pytest.approx(0.15) and b == pytest.approx(0.15)  # both at tokens 100, 150, 200
    # per step the arm is behind (0.15 vs 0.3 at the end): the equal-steps and equal-tokens verdicts differ
    better = run([(t, 2 * t / 1000) for t in (0, 50, 100, 150, 200)])  # twice the accuracy per token
    a, b = protocol.equal_tokens_pair(better, base)
    assert a == pytest.approx(0.3) and b == pytest.approx(0.15)
    a, b = protocol.equal_tokens_pair(base, better)  # symmetric: the shorter run is found on either side
    assert a == pytest.approx(0.15) and b == pytest.approx(0.3)


def test_summarise_gives_an_equal_tokens_verdict():
    base = {s: run([(t, t / 1000 + 0.01 * s) for t in (0, 100, 200, 300, 400)]) for s in range(5)}
    half = {s: run([(t, 2 * t / 1000 + 0.01 * s + 0.002 * (s % 2)) for t in (0, 50, 100, 150, 200)]) for s in range(5)}
    rows = {r.name: r for r in protocol.summarise({"base": base, "half": half}, "base")}
    assert abs(rows["half"].delta_final.mean) < 0.01  # the same final accuracy per step, from half the tokens
    assert rows["half"].delta_equal_tokens.verdict == "better"
    assert rows["half"].delta_equal_tokens.mean == pytest.approx(0.15, abs=0.01)
    assert rows["base"].delta_equal_tokens.mean == 0
