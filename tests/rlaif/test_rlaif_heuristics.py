"""The tier-1 pre-filter: real code passes, the junk a small policy emits does not (pure functions, no server)."""

import pytest
from rlaif_samples import CPP_GOOD, JS_GOOD, PY_GOOD, RUST_GOOD

from open_r1_ext.rlaif.heuristics import (
    brackets_balanced,
    detect_language,
    extract_code,
    heuristic_score,
    normalize_language,
    strip_strings_and_comments,
)
from open_r1_ext.rlaif.workload import benchmark_workload


THRESHOLD = 0.3


@pytest.mark.parametrize(
    ("code", "lang"), [(PY_GOOD, "python"), (CPP_GOOD, "cpp"), (RUST_GOOD, "rust"), (JS_GOOD, "javascript")]
)
def test_good_code_passes_in_every_language(code, lang):
    assert heuristic_score(code, lang) >= 0.6
    assert heuristic_score(f"```{lang}\n{code}```") >= 0.6  # fence tag gives the language
    assert detect_language(code) == lang


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("", "python", 0.0),
        ("   \n  ", "python", 0.0),
        ("x = 1", "python", 0.0),  # shorter than 10 characters
        ("def add(a, b)\n    return a + b\n", "python", 0.1),  # missing colon: ast.parse fails
        ("def f(x):\n    return (x + 1\n", "python", 0.1),  # unclosed paren
        ("Sure! Here is how you could do it: loop over the list.", "python", 0.1),  # prose is not Python
        ("return return return return return return return return return", "python", 0.05),
        ("int add(int a, int b) {\n    return a + b;\n", "cpp", 0.1),  # truncated: brace never closed
        ("pub fn add(a: i64) -> i64 {\n    a + 1\n", "rust", 0.1),
        ("function f(a) {\n  return [a, 1;\n}\n", "javascript", 0.1),
        ("I think the function should simply return the sum.", "javascript", 0.1),
    ],
)
def test_junk_is_rejected(text, lang, expected):
    assert heuristic_score(text, lang) == pytest.approx(expected)
    assert heuristic_score(text, lang) < THRESHOLD


def test_python_without_a_function_or_with_a_stub_stays_below_threshold():
    assert heuristic_score("values = [1, 2, 3]\nsorted(values)\n", "python") < THRESHOLD
    assert heuristic_score("def add(a, b):\n    pass\n", "python") < THRESHOLD
    assert heuristic_score("def add(a, b):\n    raise NotImplementedError\n", "python") < THRESHOLD


def test_brackets_inside_strings_and_comments_do_not_count():
    code = 'int f() {\n    // a stray ) here\n    const char* s = "}}}";\n    return 1;\n}\n'
    assert brackets_balanced(strip_strings_and_comments(code, "cpp"))
    assert heuristic_score(code, "cpp") >= 0.6
    rust = "/// Lifetimes are not chars.\nfn first<'a>(s: &'a str) -> &'a str {\n    let c = '{';\n    s\n}\n"
    assert heuristic_score(rust, "rust") >= 0.6


def test_extract_and_normalize():
    assert extract_code("text\n```py\nprint(1)\n```\nmore") == ("print(1)", "python")
    assert normalize_language("C++") == "cpp" and normalize_language("JS") == "javascript"
    assert normalize_language("cobol") is None


def test_filter_on_the_benchmark_workload():
    """Every junk sample of the benchmark is rejected; every well-formed solution passes."""
    for s in benchmark_workload():
        score = heuristic_score(s.completion, s.language)
        if s.kind in ("good", "variant"):
            assert score >= THRESHOLD, s.completion
        elif s.kind in ("syntax_error", "prose", "empty", "repeated"):
            assert score < THRESHOLD, s.completion
