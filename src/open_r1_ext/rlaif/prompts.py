"""What the teacher sends: TRL prompts and completions as text, and one Messages API request per group of candidates.

The request puts the rubric in a system block (marked `cache_control` when prompt caching is on) or, with that
saving off, in the user message; the task is truncated to `teacher_prompt_context_chars`; each candidate is wrapped
in `<candidate index="k">...</candidate>` (the format `fake_server` reads back). `min_cacheable_tokens` says when
a cached prefix is long enough to be cached at all.
"""

from __future__ import annotations

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
PLAIN_SYSTEM_PROMPT = "You grade code against the rubric in the user message. Reply with a JSON array of numbers only."


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


def user_message(config: TeacherConfig, rubric: str, prompt: str, language: str, codes: list[str]) -> str:
    """The user turn: (the rubric, when it is not in the system prompt,) the task, the language, the candidates."""
    task = prompt
    if config.teacher_truncate_prompt and len(task) > config.teacher_prompt_context_chars:
        task = task[: config.teacher_prompt_context_chars] + " [...]"
    parts = [] if config.teacher_rubric_in_system_prompt else [rubric, ""]
    parts += [f"TASK{' (truncated)' if task is not prompt else ''}:", task, "", f"LANGUAGE: {language}", ""]
    for i, code in enumerate(codes, 1):
        parts += [f'<candidate index="{i}">', code, "</candidate>"]
    parts += ["", f"Reply with a JSON array of exactly {len(codes)} numbers in [0, 1], one per candidate, in order."]
    return "\n".join(parts)


def build_request(config: TeacherConfig, rubric: str, prompt: str, language: str, codes: list[str]) -> dict:
    """Keyword arguments of `client.messages.create` for one call scoring `codes` (one group) for `prompt`."""
    if config.teacher_rubric_in_system_prompt:
        block = {"type": "text", "text": rubric}
        if config.teacher_use_prompt_caching:
            block["cache_control"] = {"type": "ephemeral"}
        system = [block]
    else:
        system = PLAIN_SYSTEM_PROMPT
    return {
        "model": config.teacher_model,
        "max_tokens": config.teacher_max_output_tokens,
        "system": system,
        "messages": [{"role": "user", "content": user_message(config, rubric, prompt, language, codes)}],
    }
