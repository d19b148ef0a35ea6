"""The Anthropic adapter against a fake Messages API on 127.0.0.1, through the real SDK.

Message shapes: https://platform.claude.com/docs/en/api/messages. Batch shapes:
https://platform.claude.com/docs/en/build-with-claude/batch-processing (create returns a
``message_batch`` in progress; retrieve reports ``processing_status`` and, once ended, a
``results_url`` serving JSONL lines ``{"custom_id", "result": {"type", ...}}``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

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
from werkzeug import Request as WsgiRequest
from werkzeug import Response

from clinsum.errors import ConfigError, FatalError, RateLimited, SetupError, TransientError
from clinsum.providers import registry
from clinsum.providers.anthropic import VERDICT_TOOL, AnthropicProvider, create, structured_mode
from clinsum.providers.anthropic_batch import AnthropicBatch, custom_id_for, prefill_cache
from clinsum.providers.base import Generation, Request
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
def env(monkeypatch: pytest.MonkeyPatch, local_http: HTTPServer) -> HTTPServer:
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
        json_response(anthropic_text("Patient with CAP, started on ceftriaxone."), headers={"request-id": "req_abc"})
    )
    gen = await provider(system_prompt="You summarize clinical notes.", effort="low").generate(
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
    assert sent["max_tokens"] == 4096
    assert "temperature" not in sent  # refused by API version 2026-10-21
    assert sent["output_config"] == {"effort": "low"}
    assert env.log[0][0].headers.get("anthropic-version")


async def test_json_schema_uses_native_json_outputs(env: HTTPServer) -> None:
    verdict = {"accurate": 4, "evidence": "dose matches the note"}
    env.expect_oneshot_request("/v1/messages", method="POST").respond_with_json(anthropic_text(json.dumps(verdict)))
    gen = await provider().generate(Request(prompt="Rate it", json_schema=SCHEMA))

    assert json.loads(gen.text) == verdict
    sent = json.loads(env.log[0][0].get_data())
    fmt = sent["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"accurate", "evidence"}
    assert "effort" not in sent["output_config"]
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
    env.expect_oneshot_request("/v1/messages").respond_with_response(anthropic_error(status, kind, "Overloaded"))
    with pytest.raises(TransientError):
        await provider().generate(Request(prompt="x"))


async def test_timeout_is_transient(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_handler(slow(json_response(anthropic_text("late")), 0.6))
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
    env.expect_oneshot_request("/v1/messages").respond_with_json(
        anthropic_text("67M with CAP, started on ceftr", stop_reason="max_tokens")
    )
    with pytest.raises(FatalError, match="cut off"):
        await provider().generate(Request(prompt="x"))


async def test_unknown_price_leaves_cost_empty(env: HTTPServer) -> None:
    env.expect_oneshot_request("/v1/messages").respond_with_json(anthropic_text("ok", model="claude-future-9"))
    gen = await provider("anthropic:claude-future-9").generate(Request(prompt="x"))
    assert gen.cost_usd is None
    assert gen.input_tokens == 2095


async def test_injected_client_and_price_override(local_http: HTTPServer) -> None:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="k", base_url=local_http.url_for("/").rstrip("/"), max_retries=0)
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
    with pytest.raises(ConfigError, match="temprature"):
        create("anthropic:claude-sonnet-5-5", {"temprature": 0.2}, client=object())


# --- Message Batches ------------------------------------------------------------------------

BATCH_ID = "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"


def batch_body(status: str, server: HTTPServer, counts: dict[str, int] | None = None) -> dict[str, Any]:
    ended = status == "ended"
    return {
        "id": BATCH_ID,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts
        or {"processing": 0 if ended else 5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": "2026-11-26T05:10:00Z" if ended else None,
        "created_at": "2026-11-26T05:00:00Z",
        "expires_at": "2026-11-27T05:00:00Z",
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": server.url_for(f"/v1/messages/batches/{BATCH_ID}/results") if ended else None,
    }


def serve_batch(server: HTTPServer, lines: list[dict[str, Any]], polls_in_progress: int = 1) -> None:
    """create -> in_progress; retrieve -> in_progress ``polls_in_progress`` times, then ended; JSONL results."""
    server.expect_request("/v1/messages/batches", method="POST").respond_with_json(batch_body("in_progress", server))
    calls = {"n": 0}

    def retrieve(_request: WsgiRequest) -> Response:
        calls["n"] += 1
        status = "in_progress" if calls["n"] <= polls_in_progress else "ended"
        return json_response(batch_body(status, server))

    server.expect_request(f"/v1/messages/batches/{BATCH_ID}", method="GET").respond_with_handler(retrieve)
    server.expect_request(f"/v1/messages/batches/{BATCH_ID}/results", method="GET").respond_with_response(
        Response("\n".join(json.dumps(line) for line in lines) + "\n", 200, content_type="application/binary")
    )


def succeeded(key: str, text: str) -> dict[str, Any]:
    message = anthropic_text(text, input_tokens=1000, output_tokens=200)
    return {"custom_id": custom_id_for(key), "result": {"type": "succeeded", "message": message}}


def errored(key: str, kind: str, message: str) -> dict[str, Any]:
    error = {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
    return {"custom_id": custom_id_for(key), "result": {"type": "errored", "error": error}}


@pytest.fixture
def batch(local_http: HTTPServer) -> AnthropicBatch:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="k", base_url=local_http.url_for("/").rstrip("/"), max_retries=0)
    return AnthropicBatch(create("anthropic:claude-sonnet-5-5", {}, client=client), poll_interval_s=0.01)


ITEMS = [
    ("note-1", Request(prompt="Summarize note 1")),
    ("note 2/ed", Request(prompt="Rate", json_schema=SCHEMA)),
    ("note-3", Request(prompt="Summarize a very long note")),
    ("note-4", Request(prompt="Summarize note 4")),
    ("note-5", Request(prompt="Summarize note 5")),
]


async def test_run_submits_polls_and_maps_every_outcome(batch: AnthropicBatch, local_http: HTTPServer) -> None:
    serve_batch(
        local_http,
        [
            errored("note-3", "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
            succeeded("note 2/ed", '{"accurate": 4}'),
            succeeded("note-1", "67M with CAP."),
            errored("note-4", "overloaded_error", "Overloaded"),
            {"custom_id": "note-5", "result": {"type": "expired"}},
        ],
    )
    submitted: list[str] = []
    polls: list[str] = []
    outcomes = await batch.run(
        ITEMS, on_submitted=submitted.append, on_poll=lambda s: polls.append(s.processing_status)
    )

    assert submitted == [BATCH_ID]
    assert polls == ["in_progress", "ended"]
    assert set(outcomes) == {key for key, _ in ITEMS}

    first = outcomes["note-1"]
    assert isinstance(first, Generation) and first.text == "67M with CAP."
    assert (first.input_tokens, first.output_tokens) == (1000, 200)
    assert first.cost_usd == pytest.approx(0.5 * (1000 * 2.0 + 200 * 10.0) / 1e6)  # batch: half price
    second = outcomes["note 2/ed"]
    assert isinstance(second, Generation) and json.loads(second.text) == {"accurate": 4}

    third = outcomes["note-3"]
    assert isinstance(third, FatalError) and str(third).startswith(CONTEXT_TOO_LONG)
    assert isinstance(outcomes["note-4"], TransientError)
    assert isinstance(outcomes["note-5"], TransientError) and "expired" in str(outcomes["note-5"])

    create_call = next(req for req, _ in local_http.log if req.method == "POST")
    sent = json.loads(create_call.get_data())["requests"]
    assert [r["custom_id"] for r in sent] == [custom_id_for(key) for key, _ in ITEMS]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", r["custom_id"]) for r in sent)
    assert sent[0]["params"]["model"] == "claude-sonnet-5-5"
    assert sent[1]["params"]["output_config"]["format"]["type"] == "json_schema"


async def test_resume_reads_an_existing_batch_without_resubmitting(
    batch: AnthropicBatch,
    local_http: HTTPServer,
) -> None:
    serve_batch(local_http, [succeeded("note-1", "resumed")], polls_in_progress=0)
    outcomes = await batch.run(ITEMS[:1], batch_id=BATCH_ID)
    first = outcomes["note-1"]
    assert isinstance(first, Generation) and first.text == "resumed"
    # Only batch traffic counts: a slow handler of an earlier timeout test may log its request late.
    assert all(req.method == "GET" for req, _ in local_http.log if req.path.startswith("/v1/messages/batches"))
    assert any(req.path.endswith("/results") for req, _ in local_http.log)


async def test_wait_gives_up_after_max_wait_with_a_resumable_error(
    batch: AnthropicBatch,
    local_http: HTTPServer,
) -> None:
    serve_batch(local_http, [], polls_in_progress=1000)
    batch.max_wait_s = 0.03
    with pytest.raises(TransientError, match="resume later"):
        await batch.wait(BATCH_ID)


async def test_missing_result_is_transient(batch: AnthropicBatch, local_http: HTTPServer) -> None:
    serve_batch(local_http, [succeeded("note-1", "only one")], polls_in_progress=0)
    outcomes = await batch.run(ITEMS[:2], batch_id=BATCH_ID)
    assert isinstance(outcomes["note-1"], Generation)
    assert isinstance(outcomes["note 2/ed"], TransientError)


async def test_submit_rate_limited(batch: AnthropicBatch, local_http: HTTPServer) -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "too many batches"}}
    local_http.expect_request("/v1/messages/batches", method="POST").respond_with_response(
        json_response(body, 429, {"retry-after": "60"})
    )
    with pytest.raises(RateLimited) as caught:
        await batch.submit(ITEMS)
    assert caught.value.retry_after == 60.0


def test_custom_ids_are_valid_and_stable() -> None:
    assert custom_id_for("note-1") == "note-1"
    unsafe = custom_id_for("mtsamples/note 7.txt")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", unsafe)
    assert unsafe == custom_id_for("mtsamples/note 7.txt")
    assert custom_id_for("x" * 65) != "x" * 65


async def test_duplicate_and_empty_batches_are_refused(batch: AnthropicBatch) -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        await batch.submit([("a", Request(prompt="1")), ("a", Request(prompt="2"))])
    with pytest.raises(ConfigError, match="empty"):
        await batch.submit([])


async def test_prefill_cache_puts_batch_answers_under_the_runner(
    batch: AnthropicBatch,
    local_http: HTTPServer,
    tmp_path: Any,
) -> None:
    from clinsum.dispatch import Dispatcher, cache_key
    from clinsum.store import Store

    store = Store.open(tmp_path / "run.db")
    requests = [Request(prompt="Summarize note 1"), Request(prompt="Summarize note 2")]
    keys = [cache_key(batch.provider, r) for r in requests]  # type: ignore[arg-type]
    serve_batch(
        local_http,
        [
            {"custom_id": keys[0], "result": {"type": "succeeded", "message": anthropic_text("batched one")}},
            {"custom_id": keys[1], "result": {"type": "expired"}},
        ],
        polls_in_progress=0,
    )
    local_http.expect_request("/v1/messages", method="POST").respond_with_json(anthropic_text("live two"))
    saved: list[str] = []
    outcomes = await prefill_cache(batch, store, requests, on_submitted=saved.append)
    assert saved == [BATCH_ID] and set(outcomes) == set(keys)

    dispatcher = Dispatcher(store, base_delay_s=0)
    first = await dispatcher.generate(batch.provider, requests[0])
    assert first.cached and first.text == "batched one"
    assert first.cost_usd == pytest.approx(0.5 * (2095 * 2.0 + 503 * 10.0) / 1e6)
    second = await dispatcher.generate(batch.provider, requests[1])  # expired in the batch: asked live
    assert not second.cached and second.text == "live two"
    assert dispatcher.calls == 1

    local_http.clear()  # everything is cached now: no batch is created at all
    assert await prefill_cache(batch, store, requests) == {}
    assert local_http.log == []


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
