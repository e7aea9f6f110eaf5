"""AnthropicTeacher through the real anthropic SDK against the loopback fake Messages API."""

import asyncio
import functools
import logging
import pickle
import time

import pytest
from rlaif_samples import CPP_GOOD, JS_GOOD, PY_GOOD, PY_GOOD2, RUST_GOOD
from trl.trainer.utils import get_callable_name, is_async_callable

from open_r1_ext.rlaif.cache import cache_key
from open_r1_ext.rlaif.fake_server import FAULT_KINDS, FakeMessagesServer, fake_score
from open_r1_ext.rlaif.rubric import DEFAULT_RUBRIC
from open_r1_ext.rlaif.teacher import (
    AnthropicTeacher,
    MissingAPIKeyError,
    TeacherAuthError,
    TeacherConfig,
    min_cacheable_tokens,
)


PROMPT = "Write a function `add(a, b)` that returns the sum of two integers. " + "Be careful with overflow. " * 20
JUNK = [
    "",
    "def add(a, b)\n    return a + b\n",
    "Sure, here is the idea: add them.",
    "int add( {",
    "a a a a a a a a a a",
]


# -- pure functions ------------------------------------------------------------------------------------------------


def test_min_cacheable_tokens_by_model():
    assert min_cacheable_tokens("claude-sonnet-4-5") == 1024
    assert min_cacheable_tokens("claude-opus-4-1") == 1024
    assert min_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert min_cacheable_tokens("claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("claude-opus-4-5") == 4096


def test_is_a_trl_async_reward_function(make_teacher):
    teacher = make_teacher()
    assert is_async_callable(teacher)
    assert get_callable_name(teacher) == "anthropic_teacher"


# -- scoring ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("across", "calls"), [(True, 1), (False, 4)])
def test_scores_parsed_in_every_language(make_teacher, server, across, calls):
    teacher = make_teacher(teacher_batch_across_prompts=across)
    codes = [PY_GOOD, CPP_GOOD, RUST_GOOD, JS_GOOD]
    langs = ["python", "cpp", "rust", "javascript"]
    scores = teacher.score_sync([PROMPT] * 4, codes, langs)
    # each candidate is scored with its own task's language (the fake score hashes it)
    assert scores == [fake_score(c.strip("\n"), lang) for c, lang in zip(codes, langs)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert server.request_count == calls  # one call for the batch, or one per (prompt, language) group


def test_group_batching_makes_one_call_per_prompt(make_teacher, server):
    teacher = make_teacher(teacher_batch_across_prompts=False)
    p2 = "Write a function `mul(a, b)`."
    variants = [PY_GOOD, PY_GOOD2, PY_GOOD.replace("a + b\n", "b + a\n"), PY_GOOD2.replace("a * b", "b * a")]
    scores = teacher.score_sync([PROMPT] * 4 + [p2] * 4, variants * 2)
    assert server.request_count == 2
    assert sorted(len(r["codes"]) for r in server.requests) == [4, 4]
    assert None not in scores and teacher.stats.calls == 2


def test_batching_across_prompts_packs_whole_groups(make_teacher, server):
    """Groups of several prompts share a call (each task sent once), split only at the candidate cap."""
    teacher = make_teacher(teacher_max_candidates_per_call=6)
    prompts = [f"Write function number {i}." for i in range(3)]
    codes = [PY_GOOD.replace("a + b", f"a + b + {k}") for k in range(12)]
    scores = teacher.score_sync([p for p in prompts for _ in range(4)], codes)
    assert [len(r["codes"]) for r in server.requests] == [4, 4, 4]  # 4 + 4 > 6: a group is never split needlessly
    teacher = make_teacher(teacher_max_candidates_per_call=8, teacher_use_cache=False)
    scores = teacher.score_sync([p for p in prompts for _ in range(2)], codes[:6])
    user = server.requests[-1]["body"]["messages"][0]["content"]
    assert len(server.requests) == 4 and len(server.requests[-1]["codes"]) == 6
    assert all(user.count(p) == 1 for p in prompts)  # each task once, its candidates refer to it
    assert user.count('task="3"') == 2 and None not in scores
    assert scores == [fake_score(c.strip("\n"), "python") for c in codes[:6]]


def test_without_batching_one_call_per_completion(make_teacher, server):
    teacher = make_teacher(teacher_batch_group_scoring=False)
    teacher.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert server.request_count == 2 and all(len(r["codes"]) == 1 for r in server.requests)


def test_filtered_samples_never_reach_the_server(make_teacher, server):
    teacher = make_teacher()
    scores = teacher.score_sync([PROMPT] * (len(JUNK) + 1), [*JUNK, PY_GOOD])
    assert all(s < 0.3 for s in scores[:-1])
    assert server.scored_codes == [PY_GOOD.strip("\n")]
    assert teacher.stats.filtered == len(JUNK)
    teacher.score_sync([PROMPT] * len(JUNK), JUNK)  # a batch of junk only: no call at all
    assert server.request_count == 1


def test_threshold_zero_sends_everything(make_teacher, server):
    teacher = make_teacher(teacher_heuristic_score_threshold=0.0)
    teacher.score_sync([PROMPT] * len(JUNK), JUNK)
    assert len(server.scored_codes) == len(JUNK)


def test_cache_hits_on_repeat_and_after_restart(make_teacher, server, tmp_path):
    first = make_teacher()
    s1 = first.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert server.request_count == 1
    s2 = first.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert s2 == s1 and server.request_count == 1 and first.stats.local_cache_hits == 2
    first.close()
    restarted = make_teacher()  # a new process would build exactly this: same sqlite file
    assert restarted.score_sync([PROMPT, PROMPT], [PY_GOOD2, PY_GOOD]) == s1[::-1]
    assert server.request_count == 1 and restarted.stats.local_cache_hits == 2
    # a different rubric never reuses scores
    other_rubric = make_teacher(teacher_rubric=DEFAULT_RUBRIC + "\nBe strict.")
    other_rubric.score_sync([PROMPT], [PY_GOOD])
    assert server.request_count == 2


def test_cache_ttl_expires(make_teacher, server):
    teacher = make_teacher(teacher_cache_ttl_s=0.05)
    teacher.score_sync([PROMPT], [PY_GOOD])
    time.sleep(0.1)
    teacher.score_sync([PROMPT], [PY_GOOD])
    assert server.request_count == 2


def test_in_batch_duplicates_scored_once(make_teacher, server):
    teacher = make_teacher()
    scores = teacher.score_sync([PROMPT] * 4, [PY_GOOD, PY_GOOD, PY_GOOD2, PY_GOOD])
    assert server.scored_codes == [PY_GOOD.strip("\n"), PY_GOOD2.strip("\n")]
    assert scores[0] == scores[1] == scores[3]
    s = teacher.stats
    assert (s.api_scored, s.local_cache_hits, s.filtered, s.failures) == (2, 2, 0, 0)


def test_cache_key_format():
    key = cache_key("prompt", "code", "rust")
    kind, p, c, lang = key.split(":")
    assert (kind, lang, len(p), len(c)) == ("STUDENT", "rust", 16, 16)


def test_truncation_and_rubric_placement(make_teacher):
    teacher = make_teacher()
    req = teacher.request_for(PROMPT, "python", [PY_GOOD])
    user = req["messages"][0]["content"]
    assert PROMPT[:200] in user and PROMPT[:201] not in user
    assert req["system"][0]["text"] == DEFAULT_RUBRIC
    assert req["system"][0]["cache_control"] == {"type": "ephemeral"}
    plain = make_teacher(
        teacher_truncate_prompt=False, teacher_rubric_in_system_prompt=False, teacher_use_prompt_caching=False
    ).request_for(PROMPT, "python", [PY_GOOD])
    assert PROMPT in plain["messages"][0]["content"] and DEFAULT_RUBRIC in plain["messages"][0]["content"]
    with pytest.raises(ValueError, match="teacher_use_prompt_caching=True is invalid"):
        TeacherConfig(teacher_rubric_in_system_prompt=False, teacher_use_prompt_caching=True)


def test_prompt_caching_billing(make_teacher, server):
    teacher = make_teacher()
    teacher.score_sync([PROMPT], [PY_GOOD])
    teacher.score_sync([PROMPT], [PY_GOOD2])
    s = teacher.stats
    prefix = teacher.prefix_tokens  # tool definition + rubric, measured by the preflight's token count
    assert prefix > -(-len(DEFAULT_RUBRIC) // 4) >= 1024  # the default rubric alone is long enough for Sonnet
    assert (s.cache_write_tokens, s.cache_read_tokens) == (prefix, prefix)  # the tool is cached with the rubric
    m = teacher.metrics()
    assert m["teacher/cost_usd"] > 0 and m["api_tokens_sent"] == s.input_tokens + 2 * prefix
    billed = s.input_tokens + 1.25 * prefix + 0.1 * prefix
    assert m["teacher/tokens_per_sample"] == pytest.approx(billed / 2)


def test_short_rubric_is_not_cached_and_warns_with_the_measured_length(make_teacher, server, caplog):
    teacher = make_teacher(teacher_rubric="Grade the code from 0 to 1.", teacher_model="claude-haiku-4-5")
    with caplog.at_level(logging.WARNING, logger="open_r1_ext.rlaif.teacher"):
        teacher.score_sync([PROMPT], [PY_GOOD])
    measured = teacher.prefix_tokens
    assert server.count_requests and measured == server.count_input(server.requests[0]["body"]) - server.count_input(
        {"model": "m", "messages": server.requests[0]["body"]["messages"]}
    )
    assert (
        f"are {measured} tokens (measured by the token-counting endpoint), below the 4096-token minimum" in caplog.text
    )
    teacher.score_sync([PROMPT], [PY_GOOD2])
    assert teacher.stats.cache_write_tokens == teacher.stats.cache_read_tokens == 0


# -- reliability -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULT_KINDS)
def test_each_fault_is_retried(make_teacher, server, fault):
    teacher = make_teacher()
    server.inject(fault)
    scores = teacher.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert scores == [fake_score(PY_GOOD.strip("\n"), "python"), fake_score(PY_GOOD2.strip("\n"), "python")]
    assert server.request_count == 2 and teacher.stats.retries == 1 and teacher.stats.failures == 0


@pytest.mark.parametrize("fault", ["429", "529", "slow", "drop", "malformed_json", "wrong_count"])
def test_exhausted_retries_give_none_and_count_failures(make_teacher, server, fault):
    teacher = make_teacher(teacher_max_retries=2)
    server.inject(*[fault] * 3)
    scores = teacher.score_sync([PROMPT] * 3, [PY_GOOD, PY_GOOD2, "x"])
    assert scores[:2] == [None, None] and scores[2] == 0.0  # the filtered one keeps its heuristic score
    assert teacher.stats.failures == 2 and teacher.stats.calls == 3
    assert teacher.score_sync([PROMPT], [PY_GOOD]) == [fake_score(PY_GOOD.strip("\n"), "python")]  # not cached


def test_retry_after_is_honoured(make_teacher, server):
    teacher = make_teacher()
    server.inject("429")
    teacher.score_sync([PROMPT], [PY_GOOD])
    t = [r["time"] for r in server.requests]
    assert t[1] - t[0] >= 0.2  # the server's retry-after, far above the 0.01 s backoff


def test_concurrency_is_limited(api_key, tmp_path):
    with FakeMessagesServer(api_key=api_key, slow_s=0.2) as srv:
        srv.inject(*["slow"] * 6)
        teacher = AnthropicTeacher(
            TeacherConfig(
                teacher_base_url=srv.url,
                teacher_cache_path=str(tmp_path / "c.sqlite"),
                teacher_max_concurrency=2,
                teacher_batch_across_prompts=False,
                teacher_timeout_s=5.0,
                teacher_max_retries=0,
            )
        )
        prompts = [f"Write function number {i}." for i in range(6)]
        assert None not in teacher.score_sync(prompts, [PY_GOOD] * 6)
        assert srv.max_in_flight == 2


def test_auth_error_is_not_retried_but_raised(api_key, tmp_path):
    with FakeMessagesServer(api_key="another-key") as srv:
        teacher = AnthropicTeacher(
            TeacherConfig(teacher_base_url=srv.url, teacher_cache_path=str(tmp_path / "c.sqlite"))
        )
        with pytest.raises(TeacherAuthError, match="rejected the key") as err:
            teacher.score_sync([PROMPT], [PY_GOOD])
        assert api_key not in str(err.value)
        assert len(srv.count_requests) == 1 and srv.request_count == 0  # the preflight's count; nothing scored


def test_missing_key_fails_at_construction(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        AnthropicTeacher(TeacherConfig())
    monkeypatch.setenv("ANTHROPIC_API_KEY", "  ")
    with pytest.raises(MissingAPIKeyError, match="unset or empty"):
        AnthropicTeacher(TeacherConfig())


def test_key_never_leaks(make_teacher, server, api_key, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):  # every logger, the SDK's and httpx's included
        teacher = make_teacher()
        server.inject("429", "500", "drop", "malformed_json")
        teacher.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert caplog.records and all(api_key not in r.getMessage() for r in caplog.records)
    assert api_key not in repr(teacher) and api_key not in repr(teacher.config) and api_key not in str(vars(teacher))
    assert api_key not in str(teacher.state_dict())
    teacher.close()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert api_key.encode() not in f.read_bytes(), f
    clone = pickle.loads(pickle.dumps(teacher))  # a pickle carries no key; the copy re-reads the environment
    assert api_key.encode() not in pickle.dumps(teacher) and clone._secret.get() == api_key


def test_async_call_reports_metrics_through_trl_hooks(make_teacher, server):
    teacher = make_teacher()
    logged, extra = {}, {}
    rewards = asyncio.run(
        teacher(
            prompts=[PROMPT] * 3,
            completions=[PY_GOOD, PY_GOOD2, ""],
            log_metric=logged.__setitem__,
            log_extra=extra.__setitem__,
            trainer_state=None,
        )
    )
    assert rewards[2] == 0.0 and None not in rewards
    assert logged["teacher/calls"] == 1 and logged["teacher/filtered"] == 1
    for name in (
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "local_cache_hits",
        "failures",
        "tokens_per_sample",
        "cost_usd",
        "failure_share",
        "refusals",
        "max_tokens_stops",
        "timed_out_requests",
        "estimated_input_tokens",
        "flagged",
        "candidate_truncations",
        "escaped_delimiters",
        "encoding_replacements",
    ):
        assert f"teacher/{name}" in logged
    assert "api_tokens_sent" in logged
    assert extra["teacher_source"] == ["teacher", "teacher", "filtered"]


def test_chat_format_and_language_column(make_teacher, server):
    teacher = make_teacher()
    prompts = [[{"role": "user", "content": "Write add in Rust."}]] * 2
    completions = [
        [{"role": "assistant", "content": f"```rust\n{RUST_GOOD}```"}],
        [{"role": "assistant", "content": CPP_GOOD}],
    ]
    call = functools.partial(teacher, prompts=prompts, completions=completions, language=["rust", "cpp"])
    assert None not in asyncio.run(call())
    assert set(server.scored_codes) == {RUST_GOOD.strip("\n"), CPP_GOOD.strip("\n")}


def test_reward_threshold_turns_low_scores_into_none(make_teacher, server):
    teacher = make_teacher(teacher_reward_threshold=1.0)  # every fake score is below 1.0 except exact 1.0
    scores = teacher.score_sync([PROMPT] * 2, [PY_GOOD, PY_GOOD2])
    assert scores == [None, None] and teacher.stats.below_reward_threshold == 2
