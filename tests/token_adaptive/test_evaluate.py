"""launch/evaluate.py: pass@k arithmetic, and both data sources on a tiny saved model (offline)."""

import importlib.util
import json
from pathlib import Path

import pytest

from open_r1_ext.core.tiny import char_tokenizer, micro_llama


ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("evaluate_cli", ROOT / "launch" / "evaluate.py")
evaluate_cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluate_cli)


def test_pass_at_k():
    assert evaluate_cli.pass_at_k(4, 0, 2) == 0.0
    assert evaluate_cli.pass_at_k(4, 4, 2) == 1.0
    assert evaluate_cli.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert evaluate_cli.pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    res = evaluate_cli.summarise([[True, False], [False, False]], [2])
    assert res == {"pass@1": 0.25, "pass@2": 0.5}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    tok = char_tokenizer()
    path = tmp_path_factory.mktemp("tiny")
    micro_llama(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_builtin_task(saved_model, tmp_path):
    out = tmp_path / "r.json"
    res = evaluate_cli.main(
        ["--model", saved_model, "--task", "running_sum", "--n", "4", "--num_samples", "2", "--out", str(out)]
    )
    assert res["problems"] == 4 and set(res) >= {"pass@1", "pass@2"}
    assert 0.0 <= res["pass@1"] <= res["pass@2"] <= 1.0
    assert json.loads(out.read_text())["pass@1"] == res["pass@1"]


def test_math_dataset_from_local_jsonl(saved_model, tmp_path):
    data = tmp_path / "math.jsonl"
    rows = [{"problem": "1+1?", "solution": "$2$"}, {"problem": "2+2?", "solution": "$4$"}]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    res = evaluate_cli.main(
        ["--model", saved_model, "--dataset", str(data), "--n", "2", "--num_samples", "2", "--max_new_tokens", "4"]
    )
    assert res["problems"] == 2 and res["split"] == "train" and res["pass@1"] == 0.0  # a random model
