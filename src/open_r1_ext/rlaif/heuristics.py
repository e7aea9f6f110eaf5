"""Cheap, local checks on a code completion: language detection, code extraction and the tiered pre-filter score.

The seed's filter (length, balanced brackets, "has a function", "has docs") let almost every Python completion
through, because Python barely uses brackets. Here Python is parsed with `ast`, brackets are counted outside
strings and comments for the brace languages, and prose, stubs and one-liners without a function lose the
structure credit, so the junk a small policy really emits (syntax errors, truncations, chat instead of code,
repeated tokens) lands below `teacher_heuristic_score_threshold` and never costs a teacher call.

All functions are pure and fast (microseconds to a millisecond per completion).
"""

from __future__ import annotations

import ast
import re


LANGUAGES = ("python", "cpp", "rust", "javascript")
_ALIASES = {
    "py": "python",
    "python3": "python",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "rs": "rust",
    "js": "javascript",
    "node": "javascript",
    "jsx": "javascript",
    "ts": "javascript",
    "typescript": "javascript",
}
_FENCE_RE = re.compile(r"```([A-Za-z0-9+#_-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)

# Scores of the hard failures; everything that passes the hard checks scores at least `_PARSES`.
EMPTY, JUNK, BROKEN = 0.0, 0.05, 0.1
_PARSES, _STRUCTURE, _DOCS, _RETURNS, _BODY = 0.15, 0.35, 0.15, 0.15, 0.2
MIN_CODE_CHARS = 10


def normalize_language(name: str | None) -> str | None:
    """`"C++"` -> `"cpp"`, `"js"` -> `"javascript"`; unknown or empty names -> None."""
    if not name:
        return None
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in LANGUAGES else None


def extract_code(text: str) -> tuple[str, str | None]:
    """The code inside the first markdown fence (and the fence's language tag), or the whole text and None."""
    m = _FENCE_RE.search(text)
    if m:
        return m.group(2).strip("\n"), normalize_language(m.group(1))
    return text.strip("\n"), None


_LANG_HINTS = {
    "python": (r"^\s*def \w+\(.*\)\s*(->.*)?:", r"^\s*import \w+", r"^\s*from \w+ import", r"^\s*class \w+.*:\s*$"),
    "rust": (r"\bfn \w+\s*[<(]", r"\blet mut\b", r"\bimpl\b", r"->\s*[A-Za-z&]", r"\bpub fn\b", r"\bVec<"),
    "cpp": (
        r"#include\s*<",
        r"\bstd::",
        r"\bint main\s*\(",
        r"\btemplate\s*<",
        r"\bconst \w+&",
        r"^\s*(unsigned |signed |static |inline )*(int|long|double|float|bool|void|char|auto|size_t)[\s*&]+\w+\s*\(",
    ),
    "javascript": (r"\bfunction\b", r"\bconst \w+\s*=", r"=>", r"\bconsole\.log\b", r"\bmodule\.exports\b"),
}


def detect_language(code: str, hint: str | None = None) -> str:
    """`hint` when it names a known language, else the language whose syntax hints match most (Python on a tie)."""
    known = normalize_language(hint)
    if known:
        return known
    scores = {lang: sum(bool(re.search(p, code, re.MULTILINE)) for p in pats) for lang, pats in _LANG_HINTS.items()}
    best = max(scores.values())
    return "python" if best == 0 else max(LANGUAGES, key=lambda lang: (scores[lang], lang == "python"))


def strip_strings_and_comments(code: str, language: str) -> str:
    """`code` with string/char literals and comments blanked out (brace languages), so brackets can be counted."""
    out, i, n = [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            j = code.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in '"`' or (c == "'" and language != "rust"):
            j = i + 1
            while j < n and code[j] != c:
                j += 2 if code[j] == "\\" else 1
            i = j + 1
        elif c == "'" and language == "rust":  # a char literal ('a', '\n'); otherwise a lifetime ('a)
            m = re.match(r"'(\\.|[^\\'])'", code[i:])
            i += m.end() if m else 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def brackets_balanced(code: str) -> bool:
    """Whether (), [] and {} nest correctly in `code` (call on code with strings and comments removed)."""
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for c in code:
        if c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False
    return not stack


def _looks_like_junk(code: str) -> bool:
    """Repeated lines or tokens, mostly non-code characters: what a collapsing policy emits."""
    tokens = re.findall(r"\S+", code)
    if len(tokens) >= 8 and len(set(tokens)) / len(tokens) < 0.25:
        return True
    lines = [ln.strip() for ln in code.splitlines() if ln.strip()]
    if len(lines) >= 4 and len(set(lines)) / len(lines) < 0.5:
        return True
    printable = sum(ch.isalnum() or ch in " \t\n_()[]{}:;,.=+-*/<>!&|%\"'#" for ch in code)
    return printable / max(len(code), 1) < 0.8


def _python_features(code: str) -> dict | None:
    """Structure of parseable Python, or None when `ast.parse` fails."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]

    def is_stub(node) -> bool:
        body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        return all(
            isinstance(s, ast.Pass)
            or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis)
            or (isinstance(s, ast.Raise) and "NotImplementedError" in ast.unparse(s))
            for s in body
        )

    real = [d for d in defs if not is_stub(d)]
    return {
        "structure": bool(real),
        "docs": any(ast.get_docstring(d) for d in defs) or "#" in code,
        "returns": any(isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) for n in ast.walk(tree))
        or "print(" in code,
    }


_FUNC_RE = {
    "cpp": re.compile(r"^[\w:<>,\s*&]+?\b\w+\s*\([^;{}]*\)\s*(const\s*)?(noexcept\s*)?\{", re.MULTILINE),
    "rust": re.compile(r"\bfn\s+\w+\s*(<[^>]*>)?\s*\([^)]*\)[^{;]*\{"),
    "javascript": re.compile(
        r"\bfunction\b\s*\w*\s*\([^)]*\)\s*\{|=>\s*[{(\w]|^\s*(async\s+)?\w+\s*\([^)]*\)\s*\{", re.MULTILINE
    ),
}
_DOC_RE = {
    "cpp": re.compile(r"//|/\*"),
    "rust": re.compile(r"///|//!|//|/\*"),
    "javascript": re.compile(r"/\*\*|//|/\*"),
}
_RETURN_RE = re.compile(r"\breturn\b|\bstd::cout\b|\bprintln!|\bconsole\.log\b|\bprintf\(")


def _brace_features(code: str, language: str) -> dict | None:
    bare = strip_strings_and_comments(code, language)
    if not brackets_balanced(bare) or "{" not in bare:
        return None
    body_ok = bool(re.search(r"[;}]\s*$|;", bare)) or language == "rust"
    # A Rust function may end in a tail expression instead of `return`.
    returns = bool(_RETURN_RE.search(code)) or (
        language == "rust" and re.search(r"\n\s*[\w.()&*+\- ]+\s*\n\s*}", bare)
    )
    return {
        "structure": bool(_FUNC_RE[language].search(bare)) and body_ok,
        "docs": bool(_DOC_RE[language].search(code)),
        "returns": bool(returns),
    }


def heuristic_score(text: str, language: str | None = None) -> float:
    """Score in [0, 1] from local checks only; the tier-1 filter of the teacher.

    Hard failures score below 0.15: empty or shorter than `MIN_CODE_CHARS` (0.0), junk such as repeated
    tokens or mostly non-code characters (0.05), code that does not parse (Python `ast.parse`) or whose brackets
    do not balance outside strings and comments (0.1). Code that passes gets 0.15, plus 0.35 for a real (non-stub)
    function or class, 0.15 for a docstring or comment, 0.15 for a `return`/output, and up to 0.2 for length (five
    non-blank lines for the full share). So a parseable one-liner with no function scores about 0.2 and a
    documented function 0.8-1.0.

    Args:
        text: the completion (raw text; a markdown code fence is unwrapped).
        language: the expected language (any alias); detected from the code when None.
    """
    code, fence_lang = extract_code(text)
    if len(code.strip()) < MIN_CODE_CHARS:
        return EMPTY
    if _looks_like_junk(code):
        return JUNK
    lang = detect_language(code, language or fence_lang)
    feats = _python_features(code) if lang == "python" else _brace_features(code, lang)
    if feats is None:
        return BROKEN
    lines = sum(bool(ln.strip()) for ln in code.splitlines())
    score = _PARSES + _STRUCTURE * feats["structure"] + _DOCS * feats["docs"] + _RETURNS * feats["returns"]
    return round(min(1.0, score + _BODY * min(1.0, lines / 5)), 4)
