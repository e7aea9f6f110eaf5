"""Datasets from local files (by extension), from a `problem` column, and from the built-in tasks."""

import json

import pytest

from open_r1_ext.core.data import builtin_dataset, load_any, to_prompt_format
from open_r1_ext.core.tasks import parse_builtin_name


def test_local_jsonl_csv_txt(tmp_path):
    rows = [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "answer": "4"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "d.csv").write_text("prompt,answer\n1+1=,2\n2+2=,4\n")
    (tmp_path / "d.txt").write_text("first line\nsecond line\n")
    for name in ("d.jsonl", "d.csv"):
        ds = to_prompt_format(load_any(str(tmp_path / name)))
        assert ds["train"]["prompt"] == ["1+1=", "2+2="]
        assert [str(a) for a in ds["train"]["answer"]] == ["2", "4"]
    txt = to_prompt_format(load_any(str(tmp_path / "d.txt")), prompt_column="text")
    assert txt["train"]["prompt"] == ["first line", "second line"]
    with pytest.raises(ValueError, match="Unsupported local dataset file"):
        (tmp_path / "d.xml").write_text("<a/>")
        load_any(str(tmp_path / "d.xml"))


def test_problem_column_becomes_chat_prompt(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps([{"problem": "What is 2+2?", "solution": "$4$"}]))
    ds = to_prompt_format(load_any(str(tmp_path / "m.json")), system_prompt="Think first.")
    assert ds["train"][0]["prompt"] == [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert ds["train"][0]["solution"] == "$4$"


def test_missing_prompt_column_is_a_clear_error(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"question": "hi"}))
    with pytest.raises(ValueError, match="neither a 'prompt' nor a 'problem' column"):
        to_prompt_format(load_any(str(tmp_path / "x.jsonl")))


def test_builtin_dataset():
    assert parse_builtin_name("builtin:addition") == "addition"
    assert parse_builtin_name("openai/gsm8k") is None
    ds = builtin_dataset("addition", 10, seed=1, num_test=5)
    assert ds["train"].num_rows == 10 and ds["test"].num_rows == 5
    assert set(ds["train"].column_names) == {"prompt", "completion", "answer", "task"}
    assert not set(ds["train"]["prompt"]) & set(ds["test"]["prompt"])
