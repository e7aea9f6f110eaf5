"""A loopback fake of the Anthropic Messages API, for tests and the token benchmark.

A real HTTP server on 127.0.0.1 (random port, in a daemon thread) that answers `POST /v1/messages` with a valid
Messages API response, so the real `anthropic` SDK can be pointed at it with `base_url=server.url`:

- **Scoring**: the user message's `<candidate index="k">...</candidate>` blocks (the format
  `prompts.build_request` writes) each get a deterministic score (`fake_score` by default, or `score_fn`);
  the reply text is the JSON list of scores.
- **Usage** is computed from the request with a simple deterministic token count (`ceil(chars / 4)` per text
  block, plus 4 tokens per message) and prompt-caching semantics: the prefix up to the last block marked
  `cache_control` (system blocks first, then message blocks) is cached only when it is at least the model's
  minimum cacheable length (`prompts.min_cacheable_tokens`); the first request bills it as
  `cache_creation_input_tokens`, later ones within the TTL (refreshed on each hit, 5 minutes by default) as
  `cache_read_input_tokens`; everything after the breakpoint is `input_tokens`.
- **Faults on demand**: `inject("429", "500", ...)` queues faults consumed one per request; `fault_rate` draws them
  at random (seeded). Kinds: `429` (with `retry-after`), `500`, `529` (overloaded), `slow` (replies after
  `slow_s`, beyond the client's timeout), `malformed_json` (HTTP 200 with a broken JSON body), `bad_scores`
  (a valid message whose text is not a score list), `wrong_count` (one score too few) and `drop` (the
  connection is closed without a reply).
- **Counting**: `requests` records every request received (faulted or not), so a test can prove that filtered
  samples never reached the API; `max_in_flight` records the largest number of concurrent requests.
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

from .prompts import min_cacheable_tokens


FAULT_KINDS = ("429", "500", "529", "slow", "malformed_json", "bad_scores", "wrong_count", "drop")
_CANDIDATE_RE = re.compile(r'<candidate index="(\d+)">\n(.*?)\n</candidate>', re.DOTALL)
_LANGUAGE_RE = re.compile(r"^LANGUAGE: (\S+)$", re.MULTILINE)


def count_tokens(text: str, chars_per_token: float = 4.0) -> int:
    return math.ceil(len(text) / chars_per_token) if text else 0


def fake_score(code: str, language: str = "") -> float:
    """A deterministic score in [0.05, 1.0] from the code's hash (two decimals)."""
    h = int(hashlib.sha256(f"{language}\n{code}".encode()).hexdigest()[:8], 16)
    return round(0.05 + 0.95 * (h % 1000) / 999, 2)


# fault -> (HTTP status, error type, message) for the faults answered with an error status
_HTTP_FAULTS = {
    "429": (429, "rate_limit_error", "slow down"),
    "500": (500, "api_error", "internal"),
    "529": (529, "overloaded_error", "busy"),
}


def _error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _blocks(content) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)]


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
        clock=time.monotonic,
    ):
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"Unknown fault kinds {sorted(unknown)}; known: {list(FAULT_KINDS)}")
        self.api_key, self.score_fn = api_key, score_fn or fake_score
        self.chars_per_token, self.cache_ttl_s, self.min_cacheable = chars_per_token, cache_ttl_s, min_cacheable
        self.fault_rate, self.fault_kinds, self.slow_s, self.retry_after = fault_rate, fault_kinds, slow_s, retry_after
        self._rng, self._clock = random.Random(seed), clock
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._prompt_cache: dict[str, float] = {}  # prefix hash -> expiry
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._httpd = None
        self._thread = None

    # -- control ------------------------------------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Queue faults; each request consumes the next one (then requests succeed again)."""
        for f in faults:
            if f not in FAULT_KINDS:
                raise ValueError(f"Unknown fault {f!r}; known: {list(FAULT_KINDS)}")
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

    def compute_usage(self, body: dict) -> dict[str, int]:
        """Input-side usage of a request under prompt-caching semantics (updates the prompt cache)."""
        blocks = _blocks(body.get("system"))
        msg_overhead = 0
        for m in body.get("messages", []):
            blocks += _blocks(m.get("content"))
            msg_overhead += 4
        sizes = [count_tokens(b.get("text", ""), self.chars_per_token) for b in blocks]
        total = sum(sizes) + msg_overhead
        marks = [i for i, b in enumerate(blocks) if b.get("cache_control")]
        usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not marks:
            return usage
        prefix_tokens = sum(sizes[: marks[-1] + 1])
        if prefix_tokens < self.min_cacheable(body.get("model", "")):
            return usage  # accepted but not cached: billed as ordinary input
        prefix = json.dumps([body.get("model"), [b.get("text", "") for b in blocks[: marks[-1] + 1]]])
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
        if h.path.split("?")[0] != "/v1/messages":
            return self._send(h, 404, _error("not_found_error", h.path))
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._respond(h, raw)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, h, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(h, 400, _error("invalid_request_error", "json"))
        user = "\n".join(b.get("text", "") for m in body.get("messages", []) for b in _blocks(m.get("content")))
        codes = [c for _, c in sorted(_CANDIDATE_RE.findall(user), key=lambda t: int(t[0]))]
        lang_m = _LANGUAGE_RE.search(user)
        record = {"time": self._clock(), "codes": codes, "fault": None, "usage": None, "model": body.get("model")}
        with self._lock:
            self.requests.append(record)
        sent_key = h.headers.get("x-api-key") or (h.headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key is not None and sent_key != self.api_key:
            record["fault"] = "auth"
            return self._send(h, 401, _error("authentication_error", "invalid x-api-key"))
        fault = record["fault"] = self._next_fault()
        if fault == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if fault in _HTTP_FAULTS:
            status, kind, message = _HTTP_FAULTS[fault]
            return self._send(
                h, status, _error(kind, message), {"retry-after": self.retry_after} if status == 429 else None
            )
        if fault == "slow":
            time.sleep(self.slow_s)
        msg = self._message(body, codes, lang_m.group(1) if lang_m else "", fault, record)
        if fault == "malformed_json":
            text = msg["content"][0]["text"]
            return self._send_raw(h, 200, json.dumps(msg)[: -len(text) - 40].encode(), "application/json")
        return self._send(h, 200, msg)

    def _message(self, body: dict, codes: list[str], language: str, fault: str | None, record: dict) -> dict:
        """The Messages API reply scoring `codes` (its text spoiled for the `bad_scores` and `wrong_count` faults)."""
        usage = self.compute_usage(body)
        scores = [self.score_fn(c, language) for c in codes]
        if fault == "bad_scores":
            text = "These candidates look reasonable overall; I would rate them fairly well."
        elif fault == "wrong_count":
            text = json.dumps(scores[:-1])
        else:
            text = json.dumps(scores)
        usage["output_tokens"] = count_tokens(text, self.chars_per_token)
        record["usage"] = usage
        return {
            "id": f"msg_fake_{len(self.requests):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
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
