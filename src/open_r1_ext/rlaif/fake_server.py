"""A loopback fake of the Anthropic Messages API, for tests and the token benchmark.

A real HTTP server on 127.0.0.1 (random port, in a daemon thread) that answers `POST /v1/messages` and
`POST /v1/messages/count_tokens` like the API, so the real `anthropic` SDK can be pointed at it with
`base_url=server.url`:

- **Scoring**: the user message's `<task id="t" language="...">` blocks and `<candidate index="k" task="t">` blocks
  (the format `prompts.build_request` writes) give each candidate a deterministic score (`fake_score` of its code and
  its task's language by default, or `score_fn`). When the request offers tools and forces one with `tool_choice`,
  the reply is that tool call, `{"scores": [{"index": k, "score": x}, ...]}`, with `stop_reason` `tool_use`; without
  tools it is the JSON list of scores as text. `reply_style="chatty"` puts text blocks before the tool call (reasoning
  that quotes `nums[0]` and an example input `[0, 1]`, code with brackets, a draft score array and a final one in
  index order) and lists the tool's entries in shuffled index order: the replies a free-text parser misreads.
- **Usage** is computed from the request with a simple deterministic token count (`ceil(chars / 4)` per text
  block, plus 4 tokens per message; tool definitions as the characters of their JSON, plus the tool-use system
  prompt the API adds, `TOOL_SYSTEM_TOKENS`) and prompt-caching semantics: the prefix up to the last block marked
  `cache_control` (tools first, then system blocks, then message blocks) is cached only when it is at least the
  model's minimum cacheable length (`prompts.min_cacheable_tokens`); the first request bills it as
  `cache_creation_input_tokens`, later ones within the TTL (refreshed on each hit, 5 minutes by default) as
  `cache_read_input_tokens`; everything after the breakpoint is `input_tokens`. Output tokens are those of the
  reply's text and tool input. `count_tokens` answers the same total, free and without touching the cache.
- **Faults on demand**: `inject("429", "500", ...)` queues faults consumed one per scoring request; `fault_rate`
  draws them at random (seeded) from `fault_kinds` (default `FAULT_KINDS`, the transient ones a client must retry):
  `429` (with `retry-after`), `500`, `529` (overloaded), `slow` (replies after `slow_s`, beyond the client's timeout;
  the request is handled and billed all the same), `malformed_json` (HTTP 200 with a broken JSON body, billed),
  `bad_scores` (a text reply and no tool call), `wrong_count` (the last candidate's entry missing), `wrong_index`
  (an index given twice), `drop` (the connection is closed without a reply). `TERMINAL_FAULTS` are answered once and
  must not be retried: `refusal` (`stop_reason` refusal), `max_tokens` (cut off), `400`, `404`, and `500_no_retry`
  (a 500 with `x-should-retry: false`).
- **API versions**: as under `anthropic-version` 2026-10-21 (what the SDK sends), a request carrying `temperature`,
  `top_p` or `top_k` gets a 400 unless it is pinned to `prompts.SAMPLING_API_VERSION` (2023-06-01).
- **Models**: with `known_models` set, a request naming another model gets a 404 `not_found_error` ("model: ..."),
  on both endpoints.
- **Counting**: `requests` records every scoring request received (faulted or not, with its body, reply and
  usage), so a test can prove that filtered samples never reached the API; `count_requests` the token-counting ones;
  `max_in_flight` the largest number of concurrent requests. `count_tokens_endpoint=False` answers that endpoint
  with a 404, as some gateways do.
- **Auth**: with `api_key` set, requests whose `x-api-key` (or `Authorization: Bearer`) differs get a 401.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .prompts import SAMPLING_API_VERSION, min_cacheable_tokens


FAULT_KINDS = ("429", "500", "529", "slow", "malformed_json", "bad_scores", "wrong_count", "wrong_index", "drop")
TERMINAL_FAULTS = ("refusal", "max_tokens", "400", "404", "500_no_retry")
ALL_FAULTS = FAULT_KINDS + TERMINAL_FAULTS
# Tokens of the system prompt the API adds when tools are given (Anthropic's tool-use pricing table for the Claude 4
# models): 313 with tool_choice `any` / `tool`, 346 with `auto` / `none`. Part of the cached prefix.
TOOL_SYSTEM_TOKENS = {"any": 313, "tool": 313, "auto": 346, "none": 346}
_TASK_RE = re.compile(r'<task id="(\d+)" language="([^"]*)">\n')
_CANDIDATE_RE = re.compile(r'<candidate index="(\d+)" task="(\d+)">\n(.*?)\n</candidate>', re.DOTALL)


def count_tokens(text: str, chars_per_token: float = 4.0) -> int:
    return math.ceil(len(text) / chars_per_token) if text else 0


def fake_score(code: str, language: str = "") -> float:
    """A deterministic score in [0.05, 1.0] from the code's hash (two decimals)."""
    h = int(hashlib.sha256(f"{language}\n{code}".encode()).hexdigest()[:8], 16)
    return round(0.05 + 0.95 * (h % 1000) / 999, 2)


# fault -> (HTTP status, error type, message, extra headers) for the faults answered with an error status
_HTTP_FAULTS = {
    "429": (429, "rate_limit_error", "slow down", None),
    "500": (500, "api_error", "internal", None),
    "529": (529, "overloaded_error", "busy", None),
    "400": (400, "invalid_request_error", "messages: text content blocks must be non-empty", None),
    "404": (404, "not_found_error", "model: claude-nonexistent", None),
    "500_no_retry": (500, "api_error", "internal, do not retry", {"x-should-retry": "false"}),
}


def _error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _blocks(content) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)]


def parse_candidates(user: str) -> list[tuple[int, str, str]]:
    """`(index, code, language)` of each candidate block in a user message, in index order."""
    languages = {int(t): lang for t, lang in _TASK_RE.findall(user)}
    found = [(int(i), code, languages.get(int(t), "")) for i, t, code in _CANDIDATE_RE.findall(user)]
    return sorted(found)


def chatty_text(scores: list[float]) -> str:
    """Reasoning, code with brackets, a draft array and the final array (in index order) as a grader might write
    them before its tool call: every bracketed list a free-text parser could take for the scores."""
    n = len(scores)
    draft = [round(min(1.0, s + 0.1), 2) if s < 0.9 else round(s - 0.3, 2) for s in scores]
    return (
        f"Tracing candidate 1: it reads nums[0] first, and on the example input [0, 1] it returns 1, as it should.\n"
        f"```python\nassert f([0, 1]) == 1 and f([]) == 0  # edge cases [{n}, {n + 1}]\n```\n"
        f"A first draft of the grades was {json.dumps(draft)}, before the edge cases were checked.\n"
        f"Grades in index order: {json.dumps(scores)}"
    )


class FakeMessagesServer:
    """See the module docstring. Use as a context manager: `with FakeMessagesServer() as srv: srv.url`."""

    def __init__(
        self,
        api_key: str | None = None,
        score_fn=None,
        chars_per_token: float = 4.0,
        cache_ttl_s: float = 300.0,
        min_cacheable=min_cacheable_tokens,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = FAULT_KINDS,
        seed: int = 0,
        slow_s: float = 2.0,
        retry_after: str = "0.05",
        known_models: set[str] | None = None,
        reply_style: str = "tool",
        count_tokens_endpoint: bool = True,
        clock=time.monotonic,
    ):
        unknown = set(fault_kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"Unknown fault kinds {sorted(unknown)}; known: {list(ALL_FAULTS)}")
        if reply_style not in ("tool", "chatty"):
            raise ValueError(f"reply_style={reply_style!r}; known: 'tool', 'chatty'")
        self.api_key, self.score_fn = api_key, score_fn or fake_score
        self.chars_per_token, self.cache_ttl_s, self.min_cacheable = chars_per_token, cache_ttl_s, min_cacheable
        self.fault_rate, self.fault_kinds, self.slow_s, self.retry_after = fault_rate, fault_kinds, slow_s, retry_after
        self.known_models, self.reply_style = known_models, reply_style
        self.count_tokens_endpoint = count_tokens_endpoint
        self._rng, self._clock = random.Random(seed), clock
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._prompt_cache: dict[str, float] = {}  # prefix hash -> expiry
        self.requests: list[dict] = []
        self.count_requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._httpd = None
        self._thread = None

    # -- control ------------------------------------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Queue faults; each scoring request consumes the next one (then requests succeed again)."""
        for f in faults:
            if f not in ALL_FAULTS:
                raise ValueError(f"Unknown fault {f!r}; known: {list(ALL_FAULTS)}")
        with self._lock:
            self._faults.extend(faults)

    @property
    def request_count(self) -> int:
        return len(self.requests)

    @property
    def scored_codes(self) -> list[str]:
        """Every candidate's code that reached the server (in arrival order, faulted requests included)."""
        return [c for r in self.requests for c in r["codes"]]

    def usage_totals(self) -> dict[str, int]:
        keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        return {k: sum(r["usage"].get(k, 0) for r in self.requests if r["usage"]) for k in keys}

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeMessagesServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one write (no delayed-ACK stall per reply)
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                server._handle(self)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 drops concurrent connects (1 s SYN retries)
            daemon_threads = True

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-messages-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeMessagesServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- billing --------------------------------------------------------------------------------------------

    def _prompt_blocks(self, body: dict) -> tuple[list[dict], list[int], int]:
        """The billed blocks in cache order (tools, system, messages), their token sizes, and the overhead."""
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        blocks = list(tools) + _blocks(body.get("system"))
        overhead = 0
        for m in body.get("messages", []):
            blocks += _blocks(m.get("content"))
            overhead += 4
        texts = [json.dumps(t) for t in tools] + [b.get("text", "") for b in blocks[len(tools) :]]
        sizes = [count_tokens(t, self.chars_per_token) for t in texts]
        if tools:
            choice = (body.get("tool_choice") or {}).get("type", "auto")
            sizes[0] += TOOL_SYSTEM_TOKENS.get(choice, TOOL_SYSTEM_TOKENS["auto"])
        return blocks, sizes, overhead

    def count_input(self, body: dict) -> int:
        """Every input token of a request (what `count_tokens` answers)."""
        _, sizes, overhead = self._prompt_blocks(body)
        return sum(sizes) + overhead

    def compute_usage(self, body: dict) -> dict[str, int]:
        """Input-side usage of a request under prompt-caching semantics (updates the prompt cache)."""
        blocks, sizes, overhead = self._prompt_blocks(body)
        total = sum(sizes) + overhead
        marks = [i for i, b in enumerate(blocks) if b.get("cache_control")]
        usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not marks:
            return usage
        prefix_tokens = sum(sizes[: marks[-1] + 1])
        if prefix_tokens < self.min_cacheable(body.get("model", "")):
            return usage  # accepted but not cached: billed as ordinary input
        prefix = json.dumps([body.get("model"), blocks[: marks[-1] + 1], body.get("tool_choice")], sort_keys=True)
        key = hashlib.sha256(prefix.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            hit = self._prompt_cache.get(key, -math.inf) > now
            self._prompt_cache[key] = now + self.cache_ttl_s  # written, or refreshed on a hit
        usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = prefix_tokens
        usage["input_tokens"] = total - prefix_tokens
        return usage

    # -- request handling -----------------------------------------------------------------------------------

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_kinds)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?")[0]
        paths = ("/v1/messages", "/v1/messages/count_tokens") if self.count_tokens_endpoint else ("/v1/messages",)
        if path not in paths:
            return self._send(h, 404, _error("not_found_error", f"Not Found: {path}"))
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if path.endswith("count_tokens"):
                self._respond_count(h, raw)
            else:
                self._respond(h, raw)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _refuse(self, h, body: dict, record: dict) -> bool:
        """Answer the auth and model checks every endpoint makes; True when a reply was sent."""
        sent_key = h.headers.get("x-api-key") or (h.headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key is not None and sent_key != self.api_key:
            record["fault"] = "auth"
            self._send(h, 401, _error("authentication_error", "invalid x-api-key"))
            return True
        if self.known_models is not None and body.get("model") not in self.known_models:
            record["fault"] = "unknown_model"
            self._send(h, 404, _error("not_found_error", f"model: {body.get('model')}"))
            return True
        return False

    def _respond_count(self, h, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(h, 400, _error("invalid_request_error", "json"))
        record = {"time": self._clock(), "body": body, "fault": None}
        with self._lock:
            self.count_requests.append(record)
        if not self._refuse(h, body, record):
            self._send(h, 200, {"input_tokens": self.count_input(body)})

    def _respond(self, h, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(h, 400, _error("invalid_request_error", "json"))
        user = "\n".join(b.get("text", "") for m in body.get("messages", []) for b in _blocks(m.get("content")))
        candidates = parse_candidates(user)
        record = {
            "time": self._clock(),
            "codes": [c for _, c, _ in candidates],
            "fault": None,
            "usage": None,
            "model": body.get("model"),
            "body": body,
            "scores": None,
            "reply_text": None,
            "tool_input": None,
        }
        record["api_version"] = h.headers.get("anthropic-version")
        with self._lock:
            self.requests.append(record)
        if self._refuse(h, body, record):
            return None
        sampling = [k for k in ("temperature", "top_p", "top_k") if k in body]
        if sampling and record["api_version"] != SAMPLING_API_VERSION:
            record["fault"] = "sampling_parameter"
            message = f"{sampling[0]}: Extra inputs are not permitted (anthropic-version {record['api_version']})"
            return self._send(h, 400, _error("invalid_request_error", message))
        fault = record["fault"] = self._next_fault()
        if fault == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if fault in _HTTP_FAULTS:
            status, kind, message, headers = _HTTP_FAULTS[fault]
            headers = {**(headers or {}), **({"retry-after": self.retry_after} if status == 429 else {})}
            return self._send(h, status, _error(kind, message), headers)
        if fault == "slow":
            time.sleep(self.slow_s)
        msg = self._message(body, candidates, fault, record)
        if fault == "malformed_json":
            data = json.dumps(msg)
            return self._send_raw(h, 200, data[: len(data) // 2].encode(), "application/json")
        return self._send(h, 200, msg)

    def _message(self, body: dict, candidates: list, fault: str | None, record: dict) -> dict:
        """The Messages API reply scoring `candidates` (spoiled as the fault asks)."""
        usage = self.compute_usage(body)
        scores = [self.score_fn(code, lang) for _, code, lang in candidates]
        record["scores"] = scores
        choice = body.get("tool_choice") or {}
        tool = choice.get("name") if body.get("tools") and choice.get("type") == "tool" else None
        content, stop = [], "end_turn"
        if fault == "refusal":
            stop = "refusal"
        elif fault == "bad_scores":
            content = [{"type": "text", "text": "These candidates look reasonable overall; I would rate them well."}]
        elif tool is None:
            content = [{"type": "text", "text": json.dumps(scores[:-1] if fault == "wrong_count" else scores)}]
        else:
            entries = [{"index": i, "score": s} for i, s in enumerate(scores, 1)]
            if fault == "wrong_count":
                entries = entries[:-1]
            elif fault == "wrong_index" and entries:
                entries[-1] = {"index": 1, "score": entries[-1]["score"]}
            if self.reply_style == "chatty":
                random.Random(len(self.requests)).shuffle(entries)
                content.append({"type": "text", "text": chatty_text(scores)})
            tool_input = {"scores": entries}
            if fault == "max_tokens":
                tool_input = {"scores": entries[: len(entries) // 2]}
            content.append(
                {"type": "tool_use", "id": f"toolu_fake_{len(self.requests):06d}", "name": tool, "input": tool_input}
            )
            record["tool_input"] = tool_input
            stop = "tool_use"
        if fault == "max_tokens":
            stop = "max_tokens"
        record["reply_text"] = "".join(b.get("text", "") for b in content)
        out_text = record["reply_text"] + "".join(json.dumps(b["input"]) for b in content if b["type"] == "tool_use")
        usage["output_tokens"] = count_tokens(out_text, self.chars_per_token)
        record["usage"] = usage
        return {
            "id": f"msg_fake_{len(self.requests):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def _send(self, h, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_raw(h, status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, h, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("content-type", ctype)
            h.send_header("content-length", str(len(data)))
            h.send_header("request-id", f"req_fake_{len(self.requests):06d}")
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) before the slow reply
            pass
