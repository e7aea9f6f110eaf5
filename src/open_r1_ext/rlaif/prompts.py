"""What the teacher sends: TRL prompts and completions as text, and one Messages API request per batch of candidates.

A request asks for the scores through tool use: one tool, `record_scores`, whose input is a list of
`{index, score}` (`SCORE_TOOL`), forced with `tool_choice` (`TOOL_CHOICE`), so a reply is read by candidate index,
never by position in free text (`replies.read_scores`). Scoring runs at `teacher_temperature` (0 by default; see
`build_request` for the API version that carries it).

The rubric goes in a system block (marked `cache_control` when prompt caching is on; the API caches tools and system
together, so the tool definition is cached with the rubric) or, with that saving off, in the user message. The user
message lists the tasks, each truncated to `teacher_prompt_context_chars`, as `<task id="t" language="...">` blocks,
then the candidates as `<candidate index="k" task="t">` blocks (the format `fake_server` reads back). Student text is
made safe per candidate first (`prepare_text`): characters that cannot be encoded (lone surrogates) are replaced,
look-alikes of our delimiters are escaped, and a candidate above `teacher_max_candidate_chars` is cut; each is
counted by the teacher. `min_cacheable_tokens` says when a cached prefix is long enough to be cached at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .config import TeacherConfig

# Minimum cacheable prefix, in tokens, by model (Anthropic's prompt-caching docs, checked 2026): a `cache_control`
# breakpoint on a shorter prefix is accepted but ignored, and the prefix is billed as ordinary input on every call.
# Sonnet 4.x / Opus 4 and 4.1 / Sonnet 3.7 / Opus 3: 1024; Haiku 3 and 3.5: 2048; Haiku 4.5, Opus 4.5 and 4.6: 4096.
# Third-party mirrors of the docs disagree on Sonnet 4.6 (1024 or 2048): we take 2048 to be safe. First match wins.
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("haiku-4", 4096),
    ("opus-4-5", 4096),
    ("opus-4-6", 4096),
    ("sonnet-4-6", 2048),
    ("haiku", 2048),
    ("sonnet", 1024),
    ("opus", 1024),
)
DEFAULT_MIN_CACHEABLE_TOKENS = 1024
PLAIN_SYSTEM_PROMPT = "You grade code against the rubric in the user message and record the grades with record_scores."

SAMPLING_API_VERSION = "2023-06-01"  # the last `anthropic-version` whose Messages API takes `temperature`
TOOL_NAME = "record_scores"
# The same definition on every request (no per-request numbers in it), so that it stays part of the cached prefix.
SCORE_TOOL = {
    "name": TOOL_NAME,
    "description": "Record the grade of every candidate under the candidate's index.",
    "input_schema": {
        "type": "object",
        "properties": {
            "scores": {
                "type": "array",
                "description": "One entry per candidate, any order.",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer", "minimum": 1, "description": "The candidate's index attribute."},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                    "required": ["index", "score"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["scores"],
        "additionalProperties": False,
    },
}
TOOL_CHOICE = {"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": True}

# `<candidate`, `</task>`, `< / Candidate` ...: anything the grader (or the fake server) could take for our tags.
_DELIMITER_RE = re.compile(r"<(?=\s*/?\s*(?:candidate|task)\b)", re.IGNORECASE)


def min_cacheable_tokens(model: str) -> int:
    """The minimum prefix length (tokens) that `model` caches; 1024 for unknown names."""
    name = model.lower()
    for pattern, n in MIN_CACHEABLE_TOKENS:
        if pattern in name:
            return n
    return DEFAULT_MIN_CACHEABLE_TOKENS


def prompt_text(prompt) -> str:
    """A TRL prompt (string, or list of chat messages) as plain text: message contents joined by blank lines."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        parts = []
        for m in prompt:
            content = m.get("content") if isinstance(m, dict) else m
            if isinstance(content, list):  # content blocks
                content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
            parts.append(str(content or ""))
        return "\n\n".join(parts)
    return str(prompt)


def completion_text(completion) -> str:
    """A TRL completion (string, or list of chat messages) as plain text (the last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return completion[-1].get("content") or ""
    return str(completion or "")


@dataclass(frozen=True)
class Prepared:
    """Student (or task) text as it is sent, and what had to be done to it."""

    text: str
    encoding_replaced: bool = False  # characters UTF-8 cannot encode (lone surrogates) became U+FFFD
    escaped: bool = False  # look-alikes of `<candidate ...>` / `<task ...>` had their `<` escaped as `&lt;`
    truncated: bool = False  # cut at the size cap


def encodable(text: str) -> tuple[str, bool]:
    """`text` with every character UTF-8 cannot encode (a lone surrogate) replaced by U+FFFD, and whether any was.
    A surrogate pair left split in a `str` is joined into its character on the way."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True


def prepare_text(text: str, max_chars: int | None = None) -> Prepared:
    """Make one piece of student text safe to send: encodable, no delimiter look-alikes, at most `max_chars`."""
    text, replaced = encodable(text)
    text, n_escaped = _DELIMITER_RE.subn("&lt;", text)
    truncated = max_chars is not None and len(text) > max_chars
    if truncated:
        text = f"{text[:max_chars]}\n[... {len(text) - max_chars} more characters cut by the size cap]"
    return Prepared(text, replaced, n_escaped > 0, truncated)


def task_text(config: TeacherConfig, prompt: str) -> str:
    """The task as sent: truncated to `teacher_prompt_context_chars` (marked ` [...]`) when truncation is on."""
    if config.teacher_truncate_prompt and len(prompt) > config.teacher_prompt_context_chars:
        return prompt[: config.teacher_prompt_context_chars] + " [...]"
    return prompt


def user_message(config: TeacherConfig, rubric: str, tasks: list[tuple[str, str]], candidates: list[tuple[int, str]]):
    """The user turn: (the rubric, when it is not in the system prompt,) the tasks, then the candidates.

    Args:
        tasks: `(task text as sent, language)` per task, numbered from 1.
        candidates: `(task number, prepared code)` per candidate, indexed from 1.
    """
    parts = [] if config.teacher_rubric_in_system_prompt else [rubric, ""]
    for t, (task, language) in enumerate(tasks, 1):
        parts += [f'<task id="{t}" language="{language}">', task, "</task>"]
    for i, (t, code) in enumerate(candidates, 1):
        parts += [f'<candidate index="{i}" task="{t}">', code, "</candidate>"]
    parts.append(f"Grade all {len(candidates)} candidates in one {TOOL_NAME} call, one entry per index.")
    return "\n".join(parts)


def system_prompt(config: TeacherConfig, rubric: str):
    """The `system` parameter: the rubric block (with `cache_control` when caching is on), or a one-line prompt."""
    if not config.teacher_rubric_in_system_prompt:
        return PLAIN_SYSTEM_PROMPT
    block = {"type": "text", "text": rubric}
    if config.teacher_use_prompt_caching:
        block["cache_control"] = {"type": "ephemeral"}
    return [block]


def build_request(
    config: TeacherConfig, rubric: str, tasks: list[tuple[str, str]], candidates: list[tuple[int, str]]
) -> dict:
    """Keyword arguments of `client.messages.create` for one call scoring `candidates` (see `user_message`)."""
    request = {
        "model": config.teacher_model,
        "max_tokens": config.teacher_max_output_tokens,
        "system": system_prompt(config, rubric),
        "tools": [SCORE_TOOL],
        "tool_choice": TOOL_CHOICE,
        "messages": [{"role": "user", "content": user_message(config, rubric, tasks, candidates)}],
    }
    if config.teacher_temperature is not None:
        # The SDK speaks API version 2026-10-21, which has no sampling parameters (a `temperature` is a 400 there,
        # and the SDK's `create` no longer takes one): a set temperature goes in the body of a request pinned to
        # the last version that accepts it. A model that rejects sampling parameters under any version fails the
        # first scoring request with a TeacherConfigError naming teacher_temperature.
        request["extra_body"] = {"temperature": config.teacher_temperature}
        request["extra_headers"] = {"anthropic-version": SAMPLING_API_VERSION}
    return request


def count_tokens_kwargs(request: dict) -> dict:
    """The arguments of `client.messages.count_tokens` that price `request` (it takes no `max_tokens`, no
    `temperature`)."""
    return {k: request[k] for k in ("model", "system", "tools", "tool_choice", "messages") if k in request}
