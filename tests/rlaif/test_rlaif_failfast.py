"""Misconfiguration stops the run with the setting to fix; a run that stops getting scores stops too."""

import logging
import socket
import time

import pytest
from rlaif_samples import PY_GOOD, PY_GOOD2

from open_r1_ext.rlaif.fake_server import FakeMessagesServer, fake_score
from open_r1_ext.rlaif.teacher import (
    AnthropicTeacher,
    TeacherAuthError,
    TeacherConfig,
    TeacherConfigError,
    TeacherFailureError,
)


PROMPT = "Write a function `add(a, b)` that returns the sum of two integers."
FAST = dict(teacher_backoff_base_s=0.01, teacher_backoff_max_s=0.02, teacher_timeout_s=1.0)


def variants(n):
    return [PY_GOOD.replace("a + b\n", f"a + b + {k}\n") for k in range(n)]


@pytest.fixture
def teacher_on(api_key, tmp_path):
    made = []

    def make(url, **kw):
        t = AnthropicTeacher(
            TeacherConfig(teacher_base_url=url, teacher_cache_path=str(tmp_path / "c.sqlite"), **FAST, **kw)
        )
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_unknown_model_stops_before_anything_is_scored(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key, known_models={"claude-sonnet-4-5"}) as srv:
        teacher = teacher_on(srv.url, teacher_model="claude-sonet-4-5")
        with pytest.raises(
            TeacherConfigError, match=r"HTTP 404 \(model: claude-sonet-4-5\).*teacher_model='claude-sonet-4-5'"
        ):
            teacher.score_sync([PROMPT], [PY_GOOD])
        assert srv.request_count == 0 and len(srv.count_requests) == 1  # one free token count, nothing billed


def test_unreachable_base_url_fails_fast_naming_the_setting(api_key, teacher_on):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    url = f"http://127.0.0.1:{port}"
    teacher = teacher_on(url, teacher_max_retries=2)
    t0 = time.perf_counter()
    with pytest.raises(TeacherConfigError, match=rf"could not reach {url}.*teacher_base_url='{url}'"):
        teacher.score_sync([PROMPT], [PY_GOOD])
    assert time.perf_counter() - t0 < 5.0  # the configured retries with their backoff, then an error


def test_base_url_with_a_wrong_path_names_the_base_url(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key) as srv:
        teacher = teacher_on(srv.url + "/anthropic")
        with pytest.raises(TeacherConfigError, match=r"HTTP 404.*Check teacher_base_url="):
            teacher.score_sync([PROMPT], [PY_GOOD])


def test_rejected_key_at_preflight(api_key, teacher_on):
    with FakeMessagesServer(api_key="another-key") as srv:
        with pytest.raises(TeacherAuthError, match=r"rejected the key from \$ANTHROPIC_API_KEY \(HTTP 401"):
            teacher_on(srv.url).score_sync([PROMPT], [PY_GOOD])


def test_a_400_in_the_first_batch_stops_later_ones_are_per_request(api_key, teacher_on, caplog):
    with FakeMessagesServer(api_key=api_key) as srv:
        first = teacher_on(srv.url)
        srv.inject("400")  # the token count accepted the request; messages.create does not
        with pytest.raises(TeacherConfigError, match=r"first scoring request was rejected .* HTTP 400"):
            first.score_sync([PROMPT], [PY_GOOD])
        assert srv.request_count == 1  # not retried
        later = teacher_on(srv.url, teacher_use_cache=False)
        assert later.score_sync([PROMPT], [PY_GOOD]) == [fake_score(PY_GOOD.strip("\n"), "python")]
        srv.inject("400")
        with caplog.at_level(logging.ERROR, logger="open_r1_ext.rlaif.client"):
            assert later.score_sync([PROMPT], [PY_GOOD2]) == [None]
        assert later.stats.failures == 1 and "HTTP 400" in caplog.text


def test_a_wrong_model_without_preflight_stops_at_the_first_scoring_request(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key, known_models={"claude-sonnet-4-5"}) as srv:
        teacher = teacher_on(srv.url, teacher_model="claude-typo", teacher_preflight=False)
        with pytest.raises(TeacherConfigError, match="teacher_model='claude-typo'"):
            teacher.score_sync([PROMPT], [PY_GOOD])
        assert srv.count_requests == [] and srv.request_count == 1


def test_a_temperature_the_api_rejects_names_the_setting(api_key, teacher_on, monkeypatch):
    """A model that takes no sampling parameter under any API version fails loudly, pointing at the setting."""
    monkeypatch.setattr("open_r1_ext.rlaif.prompts.SAMPLING_API_VERSION", "2026-10-21")
    with FakeMessagesServer(api_key=api_key) as srv:
        with pytest.raises(TeacherConfigError, match=r"temperature: Extra inputs.*Check teacher_temperature=0.0"):
            teacher_on(srv.url).score_sync([PROMPT], [PY_GOOD])


def test_without_a_token_counting_endpoint_the_preflight_pings_and_goes_on(api_key, teacher_on, caplog):
    with FakeMessagesServer(api_key=api_key, count_tokens_endpoint=False) as srv:
        teacher = teacher_on(srv.url)
        with caplog.at_level(logging.WARNING):
            assert teacher.score_sync([PROMPT], [PY_GOOD]) == [fake_score(PY_GOOD.strip("\n"), "python")]
        assert "no token-counting endpoint" in caplog.text and "estimated at 4 characters/token" not in caplog.text
        assert srv.requests[0]["body"]["max_tokens"] == 1 and srv.request_count == 2  # the ping, then the call


def test_too_many_failures_stop_the_run(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key) as srv:
        teacher = teacher_on(srv.url, teacher_max_retries=0, teacher_failure_window=8, teacher_max_failure_share=0.5)
        assert None not in teacher.score_sync([PROMPT] * 4, variants(4))  # verified; the window holds 4 successes
        srv.inject("500")  # the batch is one call
        assert teacher.score_sync(["p2"] * 4, variants(4)) == [None] * 4  # 4 of 8 failed: not more than half
        srv.inject("500")
        with pytest.raises(TeacherFailureError, match=r"8 of the last 8 samples .*=0.5.*Last failure: HTTP 500"):
            teacher.score_sync(["p3"] * 4, variants(1) * 4)  # one candidate, four samples
        assert srv.request_count == 3


def test_failure_share_one_never_stops_and_the_window_is_checkpointed(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key, fault_rate=1.0, fault_kinds=("500",)) as srv:
        teacher = teacher_on(srv.url, teacher_max_retries=0, teacher_failure_window=4, teacher_max_failure_share=1.0)
        for k in range(3):
            assert teacher.score_sync([f"p{k}"] * 2, variants(2)) == [None, None]
        state = teacher.state_dict()
        assert state["outcomes"] == [True] * 4
        restored = teacher_on(srv.url, teacher_failure_window=4)
        restored.load_state_dict(state)
        assert restored.failure_share() == 1.0 and restored.stats.failures == 6


def test_x_should_retry_false_is_obeyed(api_key, teacher_on):
    with FakeMessagesServer(api_key=api_key) as srv:
        teacher = teacher_on(srv.url)
        teacher.score_sync([PROMPT], [PY_GOOD])
        srv.inject("500_no_retry")
        assert teacher.score_sync([PROMPT], [PY_GOOD2]) == [None]
        assert srv.request_count == 2 and teacher.stats.retries == 0 and teacher.stats.failures == 1
