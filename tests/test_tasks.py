import pytest

from open_r1_ext.core import tasks


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_generator_is_deterministic_and_split_disjoint(name):
    a = tasks.generate(name, 50, seed=3)
    b = tasks.generate(name, 50, seed=3)
    c = tasks.generate(name, 50, seed=4)
    assert a == b
    assert a != c
    test = {r["prompt"] for r in tasks.generate(name, 200, seed=3, split="test")}
    assert all(tasks.is_test_problem(p) for p in test)
    # no held-out problem is ever drawn for training or warm-up, however many rows are drawn
    for split in ("train", "warmup"):
        drawn = {r["prompt"] for r in tasks.generate(name, 20_000, seed=3, split=split)}
        assert not test & drawn
        assert not any(tasks.is_test_problem(p) for p in drawn)


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_reference_completion_answers_correctly(name):
    for row in tasks.generate(name, 100, seed=0):
        assert tasks.extract_answer(row["completion"]) == row["answer"]


def test_addition_answer_is_reversed_sum():
    for row in tasks.generate("addition", 100, seed=1):
        a, b = row["prompt"].rstrip("=").split("+")
        assert int(row["answer"][::-1]) == int(a) + int(b)


def test_scratchpad_is_long_enough_for_prefix_methods():
    rows = tasks.generate("addition_scratch", 20, seed=0)
    assert min(len(r["completion"]) for r in rows) >= 30
    assert rows[0]["completion"].count(",") == 3


def test_running_sum_values():
    row = tasks.generate("running_sum", 1, seed=0)[0]
    xs = [int(x) for x in row["prompt"].rstrip("=").split()]
    assert row["answer"] == str(sum(xs))
    assert row["completion"].split(">")[0].split(",")[-1] == str(sum(xs))


def test_extract_answer_and_unknown_task():
    assert tasks.extract_answer("1,2,3>6") == "6"
    assert tasks.extract_answer("a>b>12 junk") == "12"
    assert tasks.extract_answer(" 42 ") == "42"
    assert tasks.extract_answer("") == ""
    with pytest.raises(ValueError, match="known tasks"):
        tasks.get_task("nope")
    with pytest.raises(ValueError, match="known splits"):
        tasks.generate("addition", 1, split="dev")
