"""Shared fixtures: a fake API key in the environment and a loopback fake Messages API server."""

from __future__ import annotations

import pytest

from open_r1_ext.rlaif.fake_server import FakeMessagesServer
from open_r1_ext.rlaif.teacher import AnthropicTeacher, TeacherConfig


KEY = "sk-ant-test-9f3c2b7e-DO-NOT-LEAK"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


@pytest.fixture
def server(api_key):
    with FakeMessagesServer(api_key=api_key, slow_s=1.0, retry_after="0.2") as srv:
        yield srv


@pytest.fixture
def make_teacher(server, tmp_path):
    """`make_teacher(**overrides)` (`teacher_*` settings): a teacher on the fake server with fast retries and a cache in `tmp_path`."""
    made = []

    def make(**overrides):
        cfg = dict(
            teacher_base_url=server.url,
            teacher_cache_path=str(tmp_path / "scores.sqlite"),
            teacher_timeout_s=0.5,
            teacher_max_retries=3,
            teacher_backoff_base_s=0.01,
            teacher_backoff_max_s=0.02,
        )
        cfg.update(overrides)
        t = AnthropicTeacher(TeacherConfig(**cfg))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()
