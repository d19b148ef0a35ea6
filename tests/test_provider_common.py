"""Shared provider plumbing: error classification, retry-after, prices, lazy imports, timing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from clinsum.errors import ConfigError, FatalError, RateLimited, SetupError, TransientError
from clinsum.providers.common import (
    CONTEXT_TOO_LONG,
    classify_http,
    cost_usd,
    is_context_overflow,
    parse_retry_after,
    price_for,
    price_overrides,
    prices,
    require,
    timed,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (408, TransientError),
        (409, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (529, TransientError),
        (400, FatalError),
        (401, FatalError),
        (403, FatalError),
        (404, FatalError),
        (422, FatalError),
    ],
)
def test_status_classes(status: int, kind: type) -> None:
    error = classify_http(status, "boom", None)
    assert type(error) is kind
    assert error.retryable == (kind is not FatalError)
    assert f"HTTP {status}" in str(error)


def test_auth_error_names_the_credentials_to_check() -> None:
    error = classify_http(401, "invalid x-api-key", None, credentials="ANTHROPIC_API_KEY")
    assert "ANTHROPIC_API_KEY" in str(error)
    assert "not allowed" in str(classify_http(403, "denied", None, credentials="ADC"))


def test_not_found_names_the_model() -> None:
    assert "model 'gemini-9' not found" in str(classify_http(404, "nope", None, model="gemini-9"))


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 208310 tokens > 200000 maximum",  # Anthropic
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",  # Gemini
        "This model's maximum context length is 8192 tokens",  # OpenAI-style via LangChain
        "input length and `max_tokens` exceed context limit: too many tokens",
    ],
)
def test_context_overflow_is_recognised(message: str) -> None:
    assert is_context_overflow(message)
    error = classify_http(400, message, None)
    assert isinstance(error, FatalError)
    assert str(error).startswith(CONTEXT_TOO_LONG)


def test_plain_bad_request_is_not_called_context_overflow() -> None:
    error = classify_http(400, "max_tokens: field required", None)
    assert not str(error).startswith(CONTEXT_TOO_LONG)


def test_retry_after_seconds_date_and_garbage() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("17") == 17.0
    assert parse_retry_after(2.5) == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0  # in the past: no wait
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert classify_http(429, "slow down", "12").retry_after == 12.0  # type: ignore[attr-defined]


def test_price_table_entries_are_dated_and_sourced() -> None:
    table = prices()
    assert table, "the packaged price table is empty"
    for key, price in table.items():
        assert ":" in key
        assert price.checked and price.source, key
        assert price.input_per_mtok > 0 and price.output_per_mtok > 0, key


def test_cost_uses_dated_id_fallback() -> None:
    assert cost_usd("anthropic", "claude-haiku-4-5-20251001", 1_000_000, 1_000_000) == pytest.approx(6.0)
    assert cost_usd("anthropic", "claude-haiku-4-5", 1000, 500) == pytest.approx(0.0035)


def test_unknown_price_or_tokens_gives_none() -> None:
    assert cost_usd("anthropic", "claude-unknown-1", 10, 10) is None
    assert cost_usd("ollama", "llama3.1:8b", 10, 10) is None  # local is free only when the user says so
    assert cost_usd("anthropic", "claude-haiku-4-5", None, 10) is None


def test_overrides_win_and_wildcards_price_local_models() -> None:
    overrides = {
        "anthropic:claude-haiku-4-5": {"input_per_mtok": 10, "output_per_mtok": 20},
        "ollama:*": {"input_per_mtok": 0, "output_per_mtok": 0},
    }
    assert cost_usd("anthropic", "claude-haiku-4-5", 1_000_000, 0, overrides) == pytest.approx(10.0)
    assert cost_usd("ollama", "llama3.1:8b", 5000, 700, overrides) == 0.0


def test_long_context_tier() -> None:
    short = cost_usd("vertex", "gemini-2.5-pro", 200_000, 0)
    long = cost_usd("vertex", "gemini-2.5-pro", 200_001, 0)
    assert short == pytest.approx(0.25)
    assert long == pytest.approx(200_001 * 2.5 / 1e6)


def test_bad_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="input_per_mtok"):
        price_for("anthropic", "x", {"anthropic:x": {"output_per_mtok": 1}})
    with pytest.raises(ConfigError, match="unknown field"):
        price_for("anthropic", "x", {"anthropic:x": {"input_per_mtok": 1, "output_per_mtok": 1, "inpt": 2}})


def test_require_says_which_extra_to_install() -> None:
    assert require("json", "anthropic").__name__ == "json"
    with pytest.raises(SetupError, match=r"pip install 'clinsum\[vertex\]'"):
        require("clinsum_no_such_sdk", "vertex")


def test_timed_measures_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), timed() as clock:
        time.sleep(0.02)
        raise RuntimeError
    assert 0.015 < clock.seconds < 1.0
    frozen = clock.seconds
    time.sleep(0.01)
    assert clock.seconds == frozen


def test_price_overrides_accept_one_price_or_a_table() -> None:
    one = {"input_per_mtok": 1, "output_per_mtok": 2}
    assert price_overrides("vertex:gemini-x", one) == {"vertex:gemini-x": one}
    table = {"ollama:*": {"input_per_mtok": 0, "output_per_mtok": 0}}
    merged = price_overrides("vertex:gemini-x", table, one)
    assert merged == {**table, "vertex:gemini-x": one}
    assert price_overrides("vertex:gemini-x", None, {}) is None
