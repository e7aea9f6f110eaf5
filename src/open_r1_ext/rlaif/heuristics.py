"""Cheap, local checks on a code completion: language detection, code extraction and the tiered pre-filter score.

The seed's filter (length, balanced brackets, "has a function", "has docs") let almost every Python completion
through, because Python barely uses brackets. Here Python is parsed with `ast`, brackets are counted outside
strings and comments for the brace languages, and prose, stubs and one-liners without a function lose the
structure credit, so the junk a small policy really emits (syntax errors, truncations, chat instead of code,
repeated tokens) lands below `teacher_heuristic_score_threshold` and never costs a teacher call. Lambdas and
brace-less arrow functions are functions too; a function that ignores its parameters and returns a literal
(a hard-coded answer) and text addressed to the grader are flagged (`heuristic_check`) and kept from the teacher.

A prompt that ends inside an opened code fence (the recipes' `coding_prompts.jsonl`: "...\n```python\n") makes
the completion a continuation: its code runs up to the fence that closes the prompt's block (`extract_code` with
`prompt`), so a student that closes the block is not read as opening a new one.

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
_FENCE_LINE_RE = re.compile(r"^[ \t]*```+[ \t]*([A-Za-z0-9+#_-]*)[^\n]*$", re.MULTILINE)

# Scores of the hard failures; everything that passes the hard checks scores at least `_PARSES`.
EMPTY, JUNK, BROKEN = 0.0, 0.05, 0.1
GAMING, HARD_CODED = 0.0, 0.1  # text addressed to the grader (the rubric's 0.0); a literal answer, parameters unused
_PARSES, _STRUCTURE, _DOCS, _RETURNS, _BODY = 0.15, 0.35, 0.15, 0.15, 0.2
MIN_CODE_CHARS = 10


def normalize_language(name: str | None) -> str | None:
    """`"C++"` -> `"cpp"`, `"js"` -> `"javascript"`; unknown or empty names -> None."""
    if not name:
        return None
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in LANGUAGES else None


def open_fence(prompt: str | None) -> tuple[str, str | None] | None:
    """`(code, language tag)` when `prompt` ends inside an opened code fence (an odd number of fence lines): the
    code already written after that fence and the fence's language; None when every fence is closed."""
    if not prompt:
        return None
    fences = list(_FENCE_LINE_RE.finditer(prompt))
    if len(fences) % 2 == 0:
        return None
    last = fences[-1]
    return prompt[last.end() + 1 :], normalize_language(last.group(1))


def extract_code(text: str, prompt: str | None = None) -> tuple[str, str | None]:
    """The code of a completion (and its fence's language tag, else None).

    When `prompt` (a plain-text prompt) ends inside an opened code fence, the completion continues that block: the
    code is the prompt's unfinished block plus the completion up to its first fence line (the one that closes the
    block; any prose after it is dropped), or the whole completion when it never closes the block (truncated).
    A completion that instead opens a fresh block of its own (a fence with a language tag, nothing before it) is
    read like any other. Otherwise: the code inside the first markdown fence, or the whole text.
    """
    cont = open_fence(prompt)
    if cont is not None:
        head, lang = cont
        m = _FENCE_LINE_RE.search(text)
        if m is None:
            return (head + text).strip("\n"), lang
        if m.group(1) and not text[: m.start()].strip():
            return extract_code(text)  # the student ignored the open block and opened a new one
        return (head + text[: m.start()]).strip("\n"), lang
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


# Text addressed to the grader: a note to it, a grader named as the addressee of a grade request, a request for
# the top grade for "this" code, or an instruction to ignore the rubric. Case-insensitive, within one line.
_GRADER = r"(?:grader|grading model|evaluator|reviewer|judge|rater|reward model|claude)"
_ADDRESSEE = rf"(?:{_GRADER}|teacher|ai|model|assistant|llm)"
_GRADE_WORD = r"(?:score|grade|mark|points|rate|rating|reward|pass|correct)"
_TOP_GRADE = (
    r"(?:(?:1\.0|1|10\s*/\s*10|100\s*%)(?!\.?\d)|full (?:marks|score|credit)|a perfect (?:score|grade)"
    r"|the (?:maximum|highest|top) (?:score|grade|mark))"
)
_GRADER_PATTERNS = (
    rf"\b(?:(?:note|message|instructions?) (?:to|for)|dear|hey|hello|hi|attention)[,:]? (?:the |any |all )?"
    rf"{_ADDRESSEE}s?\b",
    rf"\b{_GRADER}s?\s*[:,][^\n]{{0,80}}\b{_GRADE_WORD}",
    rf"\b(?:give|assign|award|grant|rate|score|grade|mark)s?\b[^\n]{{0,40}}"
    rf"\b(?:this|me|it|us|the (?:code|solution|answer|candidate|submission))\b[^\n]{{0,30}}{_TOP_GRADE}",
    r"\bignore (?:all |any |the )?(?:previous|prior|above|earlier|other|grading) "
    r"(?:instructions|rules|criteria|rubric)",
)
_GRADER_RE = re.compile("|".join(_GRADER_PATTERNS), re.IGNORECASE)


def addressed_to_grader(text: str) -> bool:
    """Whether `text` (code, comments, strings or prose) talks to the grader or asks for a grade: the rubric's
    "text addressed to the grader ... scores 0.0"."""
    return bool(_GRADER_RE.search(text))


def _python_features(code: str) -> dict | None:
    """Structure of parseable Python, or None when `ast.parse` fails."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]

    def is_stub(node) -> bool:
        body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        return all(
            isinstance(s, ast.Pass)
            or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis)
            or (isinstance(s, ast.Raise) and "NotImplementedError" in ast.unparse(s))
            for s in body
        )

    real = [d for d in defs if not is_stub(d)]
    funcs = [d for d in real if not isinstance(d, ast.ClassDef)] + lambdas
    with_params = [f for f in funcs if _param_names(f)]
    return {
        "structure": bool(real or lambdas),
        "docs": any(ast.get_docstring(d) for d in defs) or "#" in code,
        "returns": bool(lambdas)
        or any(isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) for n in ast.walk(tree))
        or "print(" in code,
        "hard_coded": bool(with_params) and all(_returns_literal_only(f) for f in with_params),
    }


def _param_names(func) -> set[str]:
    a = func.args
    names = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
    names |= {p.arg for p in (a.vararg, a.kwarg) if p is not None}
    return names - {"self", "cls"}


def _returns_literal_only(func) -> bool:
    """A function (or lambda) whose whole body returns a literal and never reads its parameters."""
    if isinstance(func, ast.Lambda):
        returned = [func.body]
    else:
        body = [s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            return False
        returned = [body[0].value]
    try:
        ast.literal_eval(returned[0])
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
    return True


_FUNC_RE = {
    "cpp": re.compile(
        r"^[\w:<>,\s*&]+?\b\w+\s*\([^;{}]*\)\s*(const\s*)?(noexcept\s*)?\{"
        r"|\[[^\]\n]*\]\s*\([^)]*\)\s*(->\s*[\w:<>]+\s*)?\{",  # a C++ lambda
        re.MULTILINE,
    ),
    "rust": re.compile(r"\bfn\s+\w+\s*(<[^>]*>)?\s*\([^)]*\)[^{;]*\{"),
    "javascript": re.compile(
        r"\bfunction\b\s*\w*\s*\([^)]*\)\s*\{|=>\s*[{(\w\[\-!]|^\s*(async\s+)?\w+\s*\([^)]*\)\s*\{", re.MULTILINE
    ),
}
_DOC_RE = {
    "cpp": re.compile(r"//|/\*"),
    "rust": re.compile(r"///|//!|//|/\*"),
    "javascript": re.compile(r"/\*\*|//|/\*"),
}
_RETURN_RE = re.compile(r"\breturn\b|\bstd::cout\b|\bprintln!|\bconsole\.log\b|\bprintf\(")
# A brace-less arrow function: `(a, b) => a + b`, `x => x * 2`, `async (v) => v` (its body is the returned value).
_ARROW_RE = re.compile(r"(\([^()]*\)|\b[A-Za-z_$][\w$]*)\s*=>\s*[^\s{]")
_CONTROL_WORDS = frozenset({"if", "for", "while", "switch", "catch", "return", "sizeof", "match", "with", "elif"})
# `name(params) ... {` (functions, methods; control statements are filtered by name) and C++ lambdas `[..](..) {`.
_DEF_BRACE_RE = re.compile(r"(?:\b(\w+)\s*(?:<[^<>{};]*>)?\s*|\[[^\]\n]*\]\s*)\(([^()]*)\)[^{};()=]*(=>\s*)?\{")
_ARROW_BRACE_RE = re.compile(r"(\(([^()]*)\)|\b([A-Za-z_$][\w$]*))\s*=>\s*\{")
_ARROW_EXPR_RE = re.compile(r"(\(([^()]*)\)|\b([A-Za-z_$][\w$]*))\s*=>\s*(?!\{)([^;\n]*)")
# A returned literal once strings are blanked out (an empty return value was a string literal).
_LITERAL_BODY_RE = re.compile(r"(return\b\s*)?(-?\d+(\.\d+)?[fFlLuU]*|true|false|null|undefined|\[[-\d.,\s]*\])?\s*;?")


def _body(bare: str, open_brace: int) -> str | None:
    """The text between the brace at `open_brace` and its matching close, or None when it never closes."""
    depth = 0
    for j in range(open_brace, len(bare)):
        depth += {"{": 1, "}": -1}.get(bare[j], 0)
        if depth == 0:
            return bare[open_brace + 1 : j]
    return None


def _functions(bare: str, language: str) -> list[tuple[str, str | None, bool]]:
    """`(parameters, body, expression body?)` of each function, method, lambda or arrow function in `bare` (strings
    and comments blanked out); an arrow function with an expression body has that expression as its body."""
    out = []
    for m in _DEF_BRACE_RE.finditer(bare):
        if m.group(1) in _CONTROL_WORDS or (m.group(3) and language != "javascript"):
            continue
        out.append((m.group(2), _body(bare, m.end() - 1), False))
    if language == "javascript":
        for m in _ARROW_BRACE_RE.finditer(bare):
            if not _DEF_BRACE_RE.match(bare, m.start()):
                out.append((m.group(2) or m.group(3) or "", _body(bare, m.end() - 1), False))
        out += [(m.group(2) or m.group(3) or "", m.group(4), True) for m in _ARROW_EXPR_RE.finditer(bare)]
    return out


def _hard_coded(bare: str, language: str) -> bool:
    """Every function that takes parameters only returns a literal (and there is at least one such function)."""

    def literal_only(body: str, expr: bool) -> bool:
        m = _LITERAL_BODY_RE.fullmatch(body.strip())
        if m is None:
            return False
        # An expression body is the value itself; a brace body must `return` it (Rust: or end in it).
        return expr or language == "rust" or bool(m.group(1))

    with_params = [(body, expr) for p, body, expr in _functions(bare, language) if p.strip() and body is not None]
    return bool(with_params) and all(literal_only(body, expr) for body, expr in with_params)


def _brace_features(code: str, language: str) -> dict | None:
    bare = strip_strings_and_comments(code, language)
    arrow = language == "javascript" and bool(_ARROW_RE.search(bare))
    if not brackets_balanced(bare) or ("{" not in bare and not arrow):
        return None
    body_ok = bool(re.search(r"[;}]\s*$|;", bare)) or language == "rust" or arrow
    # A Rust function may end in a tail expression instead of `return`; an arrow's expression body is its value.
    returns = (
        bool(_RETURN_RE.search(code))
        or arrow
        or (language == "rust" and re.search(r"\n\s*[\w.()&*+\- ]+\s*\n\s*}", bare))
    )
    return {
        "structure": (bool(_FUNC_RE[language].search(bare)) and body_ok) or arrow,
        "docs": bool(_DOC_RE[language].search(code)),
        "returns": bool(returns),
        "hard_coded": _hard_coded(bare, language),
    }


def heuristic_check(text: str, language: str | None = None, prompt: str | None = None) -> tuple[float, str | None]:
    """`(score, flag)`: the pre-filter score (see `heuristic_score`) and why it was flagged, if it was:
    `"grader_message"` (text addressed to the grader, score `GAMING` 0.0) or `"hard_coded"` (every function
    with parameters ignores them and returns a literal, score `HARD_CODED` 0.1)."""
    code, fence_lang = extract_code(text, prompt)
    if addressed_to_grader(text):
        return GAMING, "grader_message"
    if len(code.strip()) < MIN_CODE_CHARS:
        return EMPTY, None
    if _looks_like_junk(code):
        return JUNK, None
    lang = detect_language(code, language or fence_lang)
    feats = _python_features(code) if lang == "python" else _brace_features(code, lang)
    if feats is None:
        return BROKEN, None
    if feats["hard_coded"]:
        return HARD_CODED, "hard_coded"
    lines = sum(bool(ln.strip()) for ln in code.splitlines())
    score = _PARSES + _STRUCTURE * feats["structure"] + _DOCS * feats["docs"] + _RETURNS * feats["returns"]
    return round(min(1.0, score + _BODY * min(1.0, lines / 5)), 4), None


def heuristic_score(text: str, language: str | None = None, prompt: str | None = None) -> float:
    """Score in [0, 1] from local checks only; the tier-1 filter of the teacher.

    Hard failures score below 0.15: empty or shorter than `MIN_CODE_CHARS` (0.0), text addressed to the grader
    (0.0), junk such as repeated tokens or mostly non-code characters (0.05), code that does not parse (Python
    `ast.parse`) or whose brackets do not balance outside strings and comments (0.1), a hard-coded answer (0.1).
    Code that passes gets 0.15, plus 0.35 for a real (non-stub) function, class, lambda or arrow function, 0.15 for
    a docstring or comment, 0.15 for a `return`/output (an expression body counts), and up to 0.2 for length (five
    non-blank lines for the full share). So a parseable one-liner with no function scores about 0.2 and a
    documented function 0.8-1.0.

    Args:
        text: the completion (raw text; a markdown code fence is unwrapped).
        language: the expected language (any alias); detected from the code when None.
        prompt: the plain-text prompt; when it ends inside an opened fence the completion continues that block.
    """
    return heuristic_check(text, language, prompt)[0]
