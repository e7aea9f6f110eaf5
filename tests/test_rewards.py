import pytest

from open_r1_ext.core import rewards


def test_exact_match_and_partial_credit():
    comps = ["1,4,9>9", "1,4,9>8", "junk", ">19"]
    answers = ["9", "9", "9", "91"]
    assert rewards.exact_match_reward(comps, answer=answers) == [1.0, 0.0, 0.0, 0.0]
    pc = rewards.partial_credit_reward(comps, answer=answers)
    assert pc[0] == 1.0 and pc[1] == 0.0 and pc[2] == 0.0
    assert pc[3] == pytest.approx(0.0)  # reversed digits: no position right
    assert rewards.partial_credit_reward([">123"], answer=["124"]) == [pytest.approx(2 / 3)]
    assert rewards.partial_credit_reward([">1234"], answer=["12"]) == [pytest.approx(0.5)]


def test_conversational_completions():
    comps = [[{"role": "assistant", "content": ">5"}]]
    assert rewards.exact_match_reward(comps, answer=["5"]) == [1.0]


def test_accuracy_math_verify():
    comps = [r"The answer is $\boxed{\frac{1}{2}}$", r"So $\boxed{0.5}$", r"$\boxed{3}$", "no answer"]
    sols = [r"$\frac{1}{2}$", r"$\frac{1}{2}$", "$4$", "$4$"]
    assert rewards.accuracy_reward(comps, solution=sols) == [1.0, 1.0, 0.0, 0.0]
    # an unparseable gold answer gives None (TRL leaves it out of the group baseline)
    assert rewards.accuracy_reward([r"$\boxed{1}$"], solution=["\\"]) == [None]


def test_format_and_tag_count():
    good = "<think>\nI add.\n</think>\n<answer>\n4\n</answer>"
    assert rewards.format_reward([good, "4"]) == [1.0, 0.0]
    assert rewards.tag_count_reward([good, "<think>\nx"]) == [1.0, 0.25]


def test_registry_lookup_and_errors():
    (fn,) = rewards.get_reward_funcs(["exact_match"])  # wrapped so that non-finite values become counted None
    assert fn.__wrapped__ is rewards.exact_match_reward and fn.__name__ == "exact_match_reward"
    assert fn([">5", ">4"], answer=["5", "5"]) == [1.0, 0.0]
    assert rewards.resolve_reward("open_r1_ext.core.rewards:format_reward") is rewards.format_reward
    assert rewards.resolve_reward("open_r1_ext.core.rewards.format_reward") is rewards.format_reward
    with pytest.raises(ValueError, match="known: .*exact_match"):
        rewards.resolve_reward("exact")
    with pytest.raises(ValueError, match="Could not import"):
        rewards.resolve_reward("no_such_module.fn")
    with pytest.raises(ValueError, match="already registered"):
        rewards.register_reward("exact_match")(lambda completions, **kw: [])


def test_scratchpad_steps_credits_each_written_column_and_the_answer():
    from open_r1_ext.core import tasks
    from open_r1_ext.core.rewards import get_reward_funcs

    (fn,) = get_reward_funcs(["scratchpad_steps"])
    prompts, answer = ["347+286="] * 5, ["336"] * 5
    completions = [
        "7+6+0=13,4+8+1=13,3+2+1=06,>336",  # all right
        "7+6+0=13,4+8+1=12,3+2+1=06,>336",  # same final answer, one column wrong: less credit
        "7+6+0=13,4+8+1=12,3+2+1=06,>326",
        ">336",  # the answer without the work
        "garbage",
    ]
    assert fn(completions, prompts=prompts, answer=answer) == [1.0, 0.75, 0.5, 0.25, 0.0]
    # the reference completions of the task score 1; a prompt that is not a scratchpad addition is exact match
    rows = tasks.generate("addition_scratch", 50, seed=3)
    scores = fn(
        [r["completion"] for r in rows], prompts=[r["prompt"] for r in rows], answer=[r["answer"] for r in rows]
    )
    assert scores == [1.0] * 50
    assert fn(["3,8>8", "3,8>9"], prompts=["3 5=", "3 5="], answer=["8", "8"]) == [1.0, 0.0]
