"""A persistent score cache in SQLite: survives restarts and crashes, expires entries after a TTL.

Keys are `STUDENT:{prompt_hash}:{code_hash}:{language}` (the seed's format; hashes, never the texts, so the file
stays small and holds no prompts or code). Each row also records a `scorer` fingerprint (teacher model and
rubric), so changing the rubric or the model never serves a stale score. Every write is committed at once
(WAL journal), so a crash loses at most the call in flight. Several processes may share one file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path


def short_hash(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def cache_key(prompt: str, code: str, language: str) -> str:
    """`STUDENT:{prompt_hash}:{code_hash}:{language}` with 16-hex-digit SHA-256 prefixes of the full texts."""
    return f"STUDENT:{short_hash(prompt)}:{short_hash(code)}:{language}"


class ScoreCache:
    """`key -> score` with a TTL in a SQLite file (or `":memory:"`)."""

    def __init__(self, path: str | Path, ttl_s: float, scorer: str, clock=time.time):
        self.path, self.ttl_s, self.scorer, self._clock = str(path), float(ttl_s), scorer, clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores (key TEXT NOT NULL, scorer TEXT NOT NULL, score REAL NOT NULL, "
            "created REAL NOT NULL, PRIMARY KEY (key, scorer))"
        )

    def get_many(self, keys: list[str]) -> dict[str, float]:
        """The fresh cached scores among `keys` (expired rows are deleted on the way)."""
        if not keys:
            return {}
        now, out = self._clock(), {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = self._db.execute(
                    f"SELECT key, score, created FROM scores WHERE scorer = ? AND key IN ({','.join('?' * len(chunk))})",
                    [self.scorer, *chunk],
                ).fetchall()
                for key, score, created in rows:
                    if now - created <= self.ttl_s:
                        out[key] = score
            self._db.execute("DELETE FROM scores WHERE created < ?", (now - self.ttl_s,))
        return out

    def put_many(self, items: dict[str, float]) -> None:
        if not items:
            return
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO scores (key, scorer, score, created) VALUES (?, ?, ?, ?)",
                [(k, self.scorer, float(v), now) for k, v in items.items()],
            )
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM scores WHERE scorer = ?", (self.scorer,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ScoreCache(path={self.path!r}, ttl_s={self.ttl_s}, entries={len(self)})"
