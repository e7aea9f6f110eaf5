"""Structured scores: one forced `record_scores` tool call, read by candidate index, never by position in free text."""

import math
from types import SimpleNamespace

import pytest
from rlaif_samples import PY_GOOD

from open_r1_ext.rlaif.fake_server import FakeMessagesServer, chatty_text, fake_score
from open_r1_ext.rlaif.prompts import SAMPLING_API_VERSION, SCORE_TOOL, TOOL_CHOICE, TOOL_NAME
from open_r1_ext.rlaif.replies import MalformedReply, TerminalReply, read_scores
from open_r1_ext.rlaif.teacher import AnthropicTeacher, TeacherConfig
from open_r1_ext.rlaif.workload import OPS, solution


def reply(*blocks, stop="tool_use"):
    return SimpleNamespace(content=list(blocks), stop_reason=stop)


def text(t):
    return SimpleNamespace(type="text", text=t)


def tool(entries, name=TOOL_NAME):
    return SimpleNamespace(type="tool_use", name=name, input={"scores": entries})


def entries(pairs):
    return [{"index": i, "score": s} for i, s in pairs]


def test_scores_are_read_by_index_whatever_the_order_and_the_text_around():
    r = reply(
        text("Candidate 1 reads nums[0]; on input [0, 1] it returns 1. Draft: [0.9, 0.2, 0.5]. Final [0.1, 0.2, 0.3]"),
        tool(entries([(3, 0.3), (1, 0.7), (2, "0.25")])),
    )
    assert read_scores(r, 3) == [0.7, 0.25, 0.3]


@pytest.mark.parametrize(
    ("blocks", "why"),
    [
        ([text("[0.5, 0.6]")], "expected one record_scores call, got none"),
        ([tool(entries([(1, 0.5), (2, 0.6)])), tool(entries([(1, 0.5), (2, 0.6)]))], "expected one record_scores"),
        ([tool(entries([(1, 0.5), (2, 0.6)]), name="other")], "expected one record_scores"),
        ([tool(entries([(1, 0.5)]))], r"no score for index \[2\]"),
        ([tool(entries([(1, 0.5), (1, 0.6)]))], "index 1 scored twice"),
        ([tool(entries([(1, 0.5), (3, 0.6)]))], "index 3 outside 1..2"),
        ([tool(entries([(0, 0.5), (1, 0.6)]))], "index 0 outside 1..2"),
        ([tool(entries([(True, 0.5), (2, 0.6)]))], "is not an integer"),
        ([tool(entries([(1.5, 0.5), (2, 0.6)]))], "is not an integer"),
        ([tool(entries([(1, 1.5), (2, 0.6)]))], "outside"),
        ([tool(entries([(1, math.nan), (2, 0.6)]))], "outside"),
        ([tool(entries([(1, True), (2, 0.6)]))], "boolean score"),
        ([tool(entries([(1, "high"), (2, 0.6)]))], "non-numeric"),
        ([SimpleNamespace(type="tool_use", name=TOOL_NAME, input={"scores": "0.5, 0.6"})], "no `scores` list"),
        ([SimpleNamespace(type="tool_use", name=TOOL_NAME, input=[0.5, 0.6])], "no `scores` list"),
    ],
)
def test_anything_but_one_valid_entry_per_index_is_malformed(blocks, why):
    with pytest.raises(MalformedReply, match=why):
        read_scores(reply(*blocks), 2)


@pytest.mark.parametrize("stop", ["refusal", "max_tokens", "model_context_window_exceeded"])
def test_refusals_and_cut_off_replies_are_terminal(stop):
    with pytest.raises(TerminalReply) as err:
        read_scores(reply(tool(entries([(1, 0.5)])), stop=stop), 1)  # even with a (partial) tool call
    assert err.value.stop_reason == stop


def test_request_forces_the_score_tool_and_pins_the_api_version_for_temperature(make_teacher, server):
    teacher = make_teacher()
    assert teacher.score_sync(["Write add."], [PY_GOOD]) == [fake_score(PY_GOOD.strip("\n"), "python")]
    (r,) = server.requests
    assert r["body"]["tools"] == [SCORE_TOOL] and r["body"]["tool_choice"] == TOOL_CHOICE
    # temperature 0 rides on the last API version that takes sampling parameters (the SDK's own rejects them)
    assert r["body"]["temperature"] == 0.0 and r["api_version"] == SAMPLING_API_VERSION
    unset = make_teacher(teacher_temperature=None, teacher_use_cache=False)
    unset.score_sync(["Write add."], [PY_GOOD])
    assert "temperature" not in server.requests[-1]["body"] and server.requests[-1]["api_version"] != "2023-06-01"


def test_temperature_changes_the_cache_namespace(make_teacher):
    assert make_teacher().fingerprint != make_teacher(teacher_temperature=None).fingerprint


def test_zero_misattributed_scores_on_chatty_replies_through_the_sdk(api_key, tmp_path):
    """Replies that mix reasoning, code with brackets, draft arrays and shuffled tool entries: every score goes
    to its own candidate (the fake score of that candidate's code and language)."""
    langs = ["python", "cpp", "rust", "javascript"]
    prompts, codes, languages, truth = [], [], [], []
    for k, op in enumerate(OPS[:12]):
        lang = langs[k % 4]
        for j in range(1 + k % 4):  # groups of 1..4 candidates
            code = solution(op, lang, acc=("acc", "total", "out", "result")[j])
            prompts.append(f"Task {op.name} in {lang}.")
            codes.append(code)
            languages.append(lang)
            truth.append(fake_score(code.strip("\n"), lang))
    with FakeMessagesServer(api_key=api_key, reply_style="chatty") as srv:
        teacher = AnthropicTeacher(
            TeacherConfig(
                teacher_base_url=srv.url,
                teacher_cache_path=str(tmp_path / "c.sqlite"),
                teacher_max_candidates_per_call=5,
                teacher_use_tiered_scoring=False,
                teacher_backoff_base_s=0.01,
            )
        )
        scores = teacher.score_sync(prompts, codes, languages)
        teacher.close()
        replies = [r for r in srv.requests if r["scores"]]
    assert len(replies) >= 5 and all("[0, 1]" in r["reply_text"] for r in replies)
    order = [[e["index"] for e in r["tool_input"]["scores"]] for r in replies]
    assert any(o != sorted(o) for o in order)  # entries really came out of index order
    misattributed = sum(s != t for s, t in zip(scores, truth))
    assert misattributed == 0 and teacher.stats.malformed_replies == 0


def test_chatty_text_holds_the_arrays_a_text_parser_would_misread():
    t = chatty_text([0.2, 0.9])
    assert "nums[0]" in t and "[0, 1]" in t and t.rstrip().endswith("[0.2, 0.9]")
