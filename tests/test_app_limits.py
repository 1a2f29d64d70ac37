"""The rate limiter's arithmetic with a controlled clock (the HTTP behaviour is tested on a real server in
tests/test_app_web.py), and the web settings that configure it."""

from __future__ import annotations

import pytest

from app.limits import RateLimiter
from rag.config import load_settings
from rag.errors import SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_then_a_wait_until_one_request_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock)  # 6 a minute: one every 10 s
    assert [limiter.allow("a") for _ in range(6)] == [0.0] * 6
    assert limiter.allow("a") == pytest.approx(10.0)
    assert limiter.allow("b") == 0.0  # another client has its own bucket
    clock.now += 4
    assert limiter.allow("a") == pytest.approx(6.0)
    clock.now += 6
    assert limiter.allow("a") == 0.0 and limiter.allow("a") == pytest.approx(10.0)


def test_idle_clients_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.limits.MAX_CLIENTS", 10)
    clock = Clock()
    limiter = RateLimiter(60, clock)
    for n in range(10):
        limiter.allow(f"c{n}")
    clock.now += 120  # everyone has refilled
    limiter.allow("new")
    assert list(limiter._buckets) == ["new"]


def test_limit_settings_are_read_and_checked() -> None:
    settings = load_settings(environ={"RAG_RATE_LIMIT": "0", "RAG_RATE_LIMIT_BY": "token", "RAG_MAX_BODY_BYTES": "4096",
                                      "RAG_FEEDBACK_FILE": "fb.jsonl"})
    assert (settings.rate_limit, settings.rate_limit_by, settings.max_body_bytes, settings.feedback_file) == (0, "token", 4096, "fb.jsonl")
    defaults = load_settings(environ={})
    assert (defaults.rate_limit, defaults.rate_limit_by, defaults.max_body_bytes, defaults.feedback_file) == (60, "address", 262144, "")
    for name, value, shown in [("rate_limit", "-1", "-1"), ("rate_limit_by", "cookie", "'cookie'"), ("max_body_bytes", "10", "10")]:
        with pytest.raises(SettingsError, match=name) as caught:
            load_settings(environ={f"RAG_{name.upper()}": value})
        assert shown in str(caught.value)
