"""The Anthropic adapter against a fake Messages API on 127.0.0.1, through the real SDK."""

from __future__ import annotations

import json
import os

import pytest
from provider_fakes import (  # noqa: F401
    ANTHROPIC_MODEL_ID,
    anthropic_error,
    anthropic_message,
    anthropic_text,
    json_response,
    local_http,
    local_http_server,
    slow,
)
from pytest_httpserver import HTTPServer
from werkzeug import Response

from clinsum.errors import FatalError, RateLimited, SetupError, TransientError
from clinsum.providers import registry
from clinsum.providers.anthropic import VERDICT_TOOL, AnthropicProvider, create, structured_mode
from clinsum.providers.base import Request
from clinsum.providers.common import CONTEXT_TOO_LONG

SCHEMA = {
    "type": "object",
    "properties": {
        "accurate": {"type": "integer", "minimum": 1, "maximum": 5},
        "evidence": {"type": "string"},
    },
    "required": ["accurate", "evidence"],
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, local_http: HTTPServer) -> HTTPServer:  # noqa: F811
    """The SDK's own environment variables point at the fake."""
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", local_http.url_for("/").rstrip("/"))
    return local_http


def provider(spec: str = "anthropic:claude-sonnet-5-5", **options: object) -> AnthropicProvider:
    made = registry.create(spec, {"timeout_s": 5, **options})
    assert isinstance(made, AnthropicProvider)
    return made


async def test_plain_answer_reports_text_usage_cost_and_ids(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages", method="POST").respond_with_response(
        json_response(
            anthropic_text("Patient with CAP, started on ceftriaxone."), headers={"request-id": "req_abc"}
        )
    )
    gen = await provider(system_prompt="You summarize clinical notes.").generate(
        Request(prompt="Summarize: ...")
    )

    assert gen.text == "Patient with CAP, started on ceftriaxone."
    assert (gen.input_tokens, gen.output_tokens) == (2095, 503)
    assert gen.cost_usd == pytest.approx((2095 * 2.0 + 503 * 10.0) / 1e6)
    assert gen.request_id == "req_abc"
    assert gen.model == ANTHROPIC_MODEL_ID
    assert gen.latency_s is not None and gen.latency_s > 0

    sent = json.loads(env.log[0][0].get_data())
    assert sent["model"] == "claude-sonnet-5-5"
    assert sent["system"] == "You summarize clinical notes."
    assert sent["messages"] == [{"role": "user", "content": "Summarize: ..."}]
    assert sent["max_tokens"] == 1024
    assert "temperature" not in sent  # refused by API version 2026-10-21
    assert env.log[0][0].headers.get("anthropic-version")


async def test_json_schema_uses_native_json_outputs(env: HTTPServer) -> None:
    verdict = {"accurate": 4, "evidence": "dose matches the note"}
    env.expect_oneshot_request("/v1/messages", method="POST").respond_with_json(
        anthropic_text(json.dumps(verdict))
    )
    gen = await provider().generate(Request(prompt="Rate it", json_schema=SCHEMA))

    assert json.loads(gen.text) == verdict
    sent = json.loads(env.log[0][0].get_data())
    fmt = sent["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"accurate", "evidence"}
    assert "tools" not in sent


async def test_json_schema_through_forced_tool(env: HTTPServer) -> None:
    verdict = {"accurate": 2, "evidence": "wrong laterality"}
    env.expect_oneshot_request("/v1/messages", method="POST").respond_with_json(
        anthropic_message(
            [{"type": "tool_use", "id": "toolu_01", "name": VERDICT_TOOL, "input": verdict}],
            stop_reason="tool_use",
            model="claude-haiku-4-5-20251001",
        )
    )
    gen = await provider("anthropic:claude-haiku-4-5", structured_output="tool").generate(
        Request(prompt="Rate it", json_schema=SCHEMA)
    )

    assert json.loads(gen.text) == verdict
    assert gen.cost_usd == pytest.approx((2095 * 1.0 + 503 * 5.0) / 1e6)
    sent = json.loads(env.log[0][0].get_data())
    assert sent["tool_choice"] == {"type": "tool", "name": VERDICT_TOOL}
    assert sent["tools"][0]["input_schema"] == SCHEMA


def test_structured_mode_by_model() -> None:
    assert structured_mode("claude-sonnet-4-5", "auto") == "json_schema"
    assert structured_mode("claude-opus-5-5", "auto") == "json_schema"
    assert structured_mode("claude-opus-4-1-20250805", "auto") == "tool"
    assert structured_mode("claude-3-7-sonnet-20250219", "auto") == "tool"
    assert structured_mode("claude-opus-4-5", "tool") == "tool"


async def test_rate_limited_carries_retry_after(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            {"retry-after": "17"},
        )
    )
    with pytest.raises(RateLimited) as caught:
        await provider().generate(Request(prompt="x"))
    assert caught.value.retry_after == 17.0
    assert "req_err_1" in str(caught.value)


@pytest.mark.parametrize(("status", "kind"), [(500, "api_error"), (529, "overloaded_error")])
async def test_server_errors_are_transient(env: HTTPServer, status: int, kind: str) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        anthropic_error(status, kind, "Overloaded")
    )
    with pytest.raises(TransientError):
        await provider().generate(Request(prompt="x"))


async def test_timeout_is_transient(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_handler(
        slow(json_response(anthropic_text("late")), 0.6)
    )
    with pytest.raises(TransientError, match="in time"):
        await provider(timeout_s=0.2).generate(Request(prompt="x"))


async def test_unreachable_host_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(TransientError, match="cannot reach"):
        await provider(timeout_s=2).generate(Request(prompt="x"))


async def test_bad_key_is_fatal_and_names_the_variable(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        anthropic_error(401, "authentication_error", "invalid x-api-key")
    )
    with pytest.raises(FatalError, match="ANTHROPIC_API_KEY") as caught:
        await provider().generate(Request(prompt="x"))
    assert not caught.value.retryable


async def test_context_too_long_is_a_clear_fatal_error(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        anthropic_error(400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum")
    )
    with pytest.raises(FatalError) as caught:
        await provider().generate(Request(prompt="very long note"))
    assert str(caught.value).startswith(CONTEXT_TOO_LONG)


async def test_unknown_model_is_fatal(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        anthropic_error(404, "not_found_error", "model: claude-nope")
    )
    with pytest.raises(FatalError, match="model 'claude-nope' not found"):
        await provider("anthropic:claude-nope").generate(Request(prompt="x"))


@pytest.mark.parametrize("body", ["not json at all", '{"unexpected": true}'])
async def test_malformed_body_is_transient(env: HTTPServer, body: str) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_response(
        Response(body, 200, content_type="application/json")
    )
    with pytest.raises(TransientError, match="malformed"):
        await provider().generate(Request(prompt="x"))


async def test_refusal_and_truncated_json_are_fatal(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_json(anthropic_text("", stop_reason="refusal"))
    with pytest.raises(FatalError, match="refused"):
        await provider().generate(Request(prompt="x"))
    env.expect_oneshot_request("/v1/messages").respond_with_json(
        anthropic_text('{"accurate": 4, "evid', stop_reason="max_tokens")
    )
    with pytest.raises(FatalError, match="max_output_tokens"):
        await provider().generate(Request(prompt="x", json_schema=SCHEMA))


async def test_unknown_price_leaves_cost_empty(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_json(
        anthropic_text("ok", model="claude-future-9")
    )
    gen = await provider("anthropic:claude-future-9").generate(Request(prompt="x"))
    assert gen.cost_usd is None
    assert gen.input_tokens == 2095


async def test_injected_client_and_price_override(local_http: HTTPServer) -> None:  # noqa: F811
    import anthropic

    client = anthropic.AsyncAnthropic(
        api_key="k", base_url=local_http.url_for("/").rstrip("/"), max_retries=0
    )
    local_http.expect_oneshot_request("/v1/messages").respond_with_json(anthropic_text("ok"))
    prov = create(
        "anthropic:claude-sonnet-5-5",
        {},
        client=client,
        prices={"anthropic:claude-sonnet-5-5": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    )
    gen = await prov.generate(Request(prompt="x"))
    assert gen.cost_usd == pytest.approx((2095 * 1.0 + 503 * 2.0) / 1e6)


def test_missing_key_says_how_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
        "ANTHROPIC_FEDERATION_RULE_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # no profile on disk either
    with pytest.raises(SetupError, match="export ANTHROPIC_API_KEY="):
        create("anthropic:claude-sonnet-5-5", {})


def test_unknown_option_is_refused() -> None:
    from clinsum.errors import ConfigError

    with pytest.raises(ConfigError, match="temprature"):
        create("anthropic:claude-sonnet-5-5", {"temprature": 0.2}, client=object())


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="ANTHROPIC_API_KEY not set")
async def test_live_anthropic() -> None:
    model = os.environ.get("CLINSUM_LIVE_ANTHROPIC_MODEL", "claude-haiku-4-5")
    prov = create(f"anthropic:{model}", {"max_output_tokens": 200})
    gen = await prov.generate(
        Request(
            prompt="Summarize in one sentence: 67M, fever and cough for 3 days, CXR RLL consolidation, "
            "started ceftriaxone and azithromycin."
        )
    )
    assert gen.text.strip() and gen.input_tokens and gen.output_tokens and gen.request_id
    structured = await prov.generate(
        Request(
            prompt="Rate the summary 'pneumonia, on antibiotics' 1-5 for accuracy with evidence.",
            json_schema=SCHEMA,
        )
    )
    assert set(json.loads(structured.text)) == {"accurate", "evidence"}
