"""The Vertex AI adapter against a fake ``generateContent`` on 127.0.0.1, through the real google-genai SDK."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from provider_fakes import (  # noqa: F401
    VERTEX_LOCATION,
    VERTEX_PROJECT,
    anthropic_text,
    json_response,
    local_http,
    local_http_server,
    slow,
    vertex_answer,
    vertex_error,
    vertex_path,
)
from pytest_httpserver import HTTPServer
from werkzeug import Response

from clinsum.errors import FatalError, RateLimited, SetupError, TransientError
from clinsum.providers import registry
from clinsum.providers.base import Request
from clinsum.providers.common import CONTEXT_TOO_LONG
from clinsum.providers.vertex import VertexProvider, create

MODEL = "gemini-2.5-flash"
SCHEMA = {
    "type": "object",
    "properties": {"accurate": {"type": "integer"}, "evidence": {"type": "string"}},
    "required": ["accurate", "evidence"],
}


def fake_credentials() -> Any:
    """Credentials that hold a token already, so no ADC lookup or refresh touches the network."""
    from google.auth.credentials import Credentials

    class Static(Credentials):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.token = "ya29.fake-token"

        def refresh(self, request: object) -> None:
            self.token = "ya29.fake-token"

    return Static()


def fake_client(server: HTTPServer, timeout_s: float = 5.0) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=True,
        project=VERTEX_PROJECT,
        location=VERTEX_LOCATION,
        credentials=fake_credentials(),
        http_options=types.HttpOptions(
            base_url=server.url_for("/"),
            api_version="v1",
            timeout=int(timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def provider(
    server: HTTPServer, spec: str = f"vertex:{MODEL}", timeout_s: float = 5.0, **options: Any
) -> VertexProvider:
    return create(spec, options, client=fake_client(server, timeout_s))


def expect(server: HTTPServer, model: str = MODEL) -> Any:
    return server.expect_oneshot_request(vertex_path(model), method="POST")


async def test_plain_answer_reports_text_usage_cost_and_ids(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_json(vertex_answer("67M with CAP on ceftriaxone."))
    gen = await provider(local_http, seed=7, system_prompt="Summarize clinical notes.").generate(
        Request(prompt="Note: ...")
    )

    assert gen.text == "67M with CAP on ceftriaxone."
    assert (gen.input_tokens, gen.output_tokens) == (1200, 150)
    assert gen.cost_usd == pytest.approx((1200 * 0.30 + 150 * 2.50) / 1e6)
    assert gen.request_id == "vNq4aPq2IZiW7dcP0ci4oAQ"
    assert gen.model == "gemini-2.5-flash"
    assert gen.latency_s is not None and gen.latency_s > 0

    request = local_http.log[0][0]
    assert request.headers["Authorization"] == "Bearer ya29.fake-token"
    sent = json.loads(request.get_data())
    assert sent["contents"] == [{"parts": [{"text": "Note: ..."}], "role": "user"}]
    assert sent["systemInstruction"]["parts"] == [{"text": "Summarize clinical notes."}]
    config = sent["generationConfig"]
    assert config["temperature"] == 0.0
    assert config["maxOutputTokens"] == 8192
    assert config["seed"] == 7
    assert "responseMimeType" not in config


async def test_structured_answer_sends_json_schema(local_http: HTTPServer) -> None:
    verdict = {"accurate": 5, "evidence": "all doses match"}
    expect(local_http).respond_with_json(vertex_answer(json.dumps(verdict)))
    gen = await provider(local_http).generate(Request(prompt="Rate", json_schema=SCHEMA, temperature=0.7))

    assert json.loads(gen.text) == verdict
    config = json.loads(local_http.log[0][0].get_data())["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == SCHEMA
    assert config["temperature"] == 0.7  # per-request override for judge sampling


async def test_thinking_tokens_are_billed_as_output(local_http: HTTPServer) -> None:
    expect(local_http, "gemini-2.5-pro").respond_with_json(
        vertex_answer("ok", prompt_tokens=1000, candidates_tokens=100, thoughts_tokens=400)
    )
    gen = await provider(local_http, "vertex:gemini-2.5-pro", thinking_budget=512).generate(Request(prompt="x"))
    assert gen.output_tokens == 500
    assert gen.cost_usd == pytest.approx((1000 * 1.25 + 500 * 10.0) / 1e6)
    config = json.loads(local_http.log[0][0].get_data())["generationConfig"]
    # google-genai 3.6 writes this field in snake_case; proto-JSON accepts either spelling.
    assert list(config["thinkingConfig"].values()) == [512]


async def test_rate_limited_with_retry_after_header(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_response(
        vertex_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.", {"Retry-After": "9"})
    )
    with pytest.raises(RateLimited) as caught:
        await provider(local_http).generate(Request(prompt="x"))
    assert caught.value.retry_after == 9.0


async def test_rate_limited_with_retry_info_in_body(local_http: HTTPServer) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}],
        }
    }
    expect(local_http).respond_with_response(json_response(body, 429))
    with pytest.raises(RateLimited) as caught:
        await provider(local_http).generate(Request(prompt="x"))
    assert caught.value.retry_after == 31.0


@pytest.mark.parametrize(("status", "grpc"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
async def test_server_errors_are_transient(local_http: HTTPServer, status: int, grpc: str) -> None:
    expect(local_http).respond_with_response(vertex_error(status, grpc, "Internal error encountered."))
    with pytest.raises(TransientError):
        await provider(local_http).generate(Request(prompt="x"))


async def test_timeout_is_transient(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_handler(slow(json_response(vertex_answer("late")), 0.6))
    with pytest.raises(TransientError, match="in time"):
        await provider(local_http, timeout_s=0.2).generate(Request(prompt="x"))


@pytest.mark.parametrize(("status", "grpc"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
async def test_auth_errors_are_fatal_and_say_what_to_check(
    local_http: HTTPServer,
    status: int,
    grpc: str,
) -> None:
    expect(local_http).respond_with_response(
        vertex_error(status, grpc, "Request had invalid authentication credentials.")
    )
    with pytest.raises(FatalError, match="Application Default Credentials") as caught:
        await provider(local_http).generate(Request(prompt="x"))
    assert not caught.value.retryable


async def test_context_too_long_is_a_clear_fatal_error(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_response(
        vertex_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        )
    )
    with pytest.raises(FatalError) as caught:
        await provider(local_http).generate(Request(prompt="very long note"))
    assert str(caught.value).startswith(CONTEXT_TOO_LONG)


async def test_unknown_model_is_fatal(local_http: HTTPServer) -> None:
    expect(local_http, "gemini-9").respond_with_response(
        vertex_error(404, "NOT_FOUND", "Publisher Model `gemini-9` was not found or your project does not have access")
    )
    with pytest.raises(FatalError, match="model 'gemini-9' not found"):
        await provider(local_http, "vertex:gemini-9").generate(Request(prompt="x"))


@pytest.mark.parametrize("body", ["not json at all", '{"unexpected": true}'])
async def test_malformed_body_is_transient(local_http: HTTPServer, body: str) -> None:
    expect(local_http).respond_with_response(Response(body, 200, content_type="application/json"))
    with pytest.raises(TransientError, match="malformed"):
        await provider(local_http).generate(Request(prompt="x"))


async def test_blocked_prompt_is_fatal_with_reason(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_json(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
            "modelVersion": MODEL,
            "responseId": "r1",
        }
    )
    with pytest.raises(FatalError, match="PROHIBITED_CONTENT"):
        await provider(local_http).generate(Request(prompt="x"))


async def test_unusable_finish_reasons_are_fatal(local_http: HTTPServer) -> None:
    expect(local_http).respond_with_json(vertex_answer("", finish_reason="SAFETY"))
    with pytest.raises(FatalError, match="finish_reason=SAFETY"):
        await provider(local_http).generate(Request(prompt="x"))
    expect(local_http).respond_with_json(vertex_answer("", finish_reason="MAX_TOKENS", thoughts_tokens=1024))
    with pytest.raises(FatalError, match="thinking"):
        await provider(local_http).generate(Request(prompt="x"))
    expect(local_http).respond_with_json(vertex_answer("67M with CAP, started on ceftr", finish_reason="MAX_TOKENS"))
    with pytest.raises(FatalError, match="cut off"):
        await provider(local_http).generate(Request(prompt="x"))


@pytest.fixture
def adc(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Application Default Credentials that resolve without files or the metadata server."""
    import google.auth

    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (fake_credentials(), None))
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def write_adc_file(path: Any) -> str:
    """An ``authorized_user`` ADC file (what ``gcloud auth application-default login`` writes)
    holding an unexpired access token, so google-auth never calls Google's token endpoint."""
    adc_file = path / "application_default_credentials.json"
    adc_file.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "fake.apps.googleusercontent.com",
                "client_secret": "fake",
                "refresh_token": "fake",
                "token": "ya29.from-adc-file",
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    return str(adc_file)


async def test_registry_builds_from_adc_file_and_sdk_environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    local_http: HTTPServer,
) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_adc_file(tmp_path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", VERTEX_LOCATION)
    local_http.expect_oneshot_request(re.compile(r".*/locations/us-central1/.*:generateContent$")).respond_with_json(
        vertex_answer("built from env")
    )
    made = registry.create(f"vertex:{MODEL}", {"base_url": local_http.url_for("/"), "api_version": "v1"})
    gen = await made.generate(Request(prompt="x"))
    assert gen.text == "built from env"
    request = local_http.log[0][0]
    assert f"/projects/{VERTEX_PROJECT}/" in request.path
    assert request.headers["Authorization"] == "Bearer ya29.from-adc-file"


async def test_price_option_from_run_config(local_http: HTTPServer) -> None:
    # what the run config's [prices."vertex:gemini-2.0-flash"] table becomes (no packaged price)
    expect(local_http, "gemini-2.0-flash").respond_with_json(vertex_answer("ok"))
    prov = create(
        "vertex:gemini-2.0-flash",
        {"prices": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}},
        client=fake_client(local_http),
    )
    gen = await prov.generate(Request(prompt="x"))
    assert gen.cost_usd == pytest.approx((1200 * 0.1 + 150 * 0.4) / 1e6)


def test_missing_project_says_how_to_fix(adc: pytest.MonkeyPatch) -> None:
    with pytest.raises(SetupError, match="export GOOGLE_CLOUD_PROJECT="):
        create(f"vertex:{MODEL}", {})


def test_missing_adc_says_how_to_fix(adc: pytest.MonkeyPatch) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_adc(scopes: object = None) -> None:
        raise DefaultCredentialsError("Your default credentials were not found.")

    adc.setattr(google.auth, "default", no_adc)
    with pytest.raises(SetupError, match="gcloud auth application-default login"):
        create(f"vertex:{MODEL}", {"project": VERTEX_PROJECT})


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("GOOGLE_CLOUD_PROJECT")
    or not (
        os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        or os.path.exists(os.path.expanduser("~/.config/gcloud/application_default_credentials.json"))
    ),
    reason="GOOGLE_CLOUD_PROJECT and Application Default Credentials not set",
)
async def test_live_vertex() -> None:
    model = os.environ.get("CLINSUM_LIVE_VERTEX_MODEL", "gemini-2.5-flash")
    prov = create(f"vertex:{model}", {"max_output_tokens": 512, "thinking_budget": 0})
    gen = await prov.generate(
        Request(prompt="Summarize in one sentence: 67M, fever and cough for 3 days, CXR RLL consolidation.")
    )
    assert gen.text.strip() and gen.input_tokens and gen.output_tokens
    structured = await prov.generate(Request(prompt="Rate 'pneumonia' 1-5 for accuracy.", json_schema=SCHEMA))
    assert set(json.loads(structured.text)) == {"accurate", "evidence"}


# --- both cloud adapters through `clinsum run`, summarizer and judge ---------------------------


def cloud_fakes(server: HTTPServer) -> None:
    """Anthropic and Vertex on one fake: summaries for plain requests, PDSQI verdicts for JSON ones."""
    from judge_fakes import verdict

    def anthropic_handler(request: Any) -> Response:
        body = json.loads(request.get_data())
        structured = "output_config" in body
        text = verdict(4) if structured else "Hypertension on lisinopril; no chest pain."
        return json_response(
            anthropic_text(text, input_tokens=400, output_tokens=60), headers={"request-id": "req_e2e"}
        )

    def vertex_handler(request: Any) -> Response:
        body = json.loads(request.get_data())
        structured = body["generationConfig"].get("responseMimeType") == "application/json"
        text = verdict(3) if structured else "HTN on lisinopril. Denies chest pain."
        return json_response(vertex_answer(text, prompt_tokens=400, candidates_tokens=50))

    server.expect_request("/v1/messages", method="POST").respond_with_handler(anthropic_handler)
    server.expect_request(re.compile(r".*:generateContent$"), method="POST").respond_with_handler(vertex_handler)


def test_clinsum_run_with_both_cloud_adapters_as_summarizers_and_judges(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    local_http: HTTPServer,
) -> None:
    from typer.testing import CliRunner

    from clinsum.cli import app
    from clinsum.store import Store

    cloud_fakes(local_http)
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", local_http.url_for("/").rstrip("/"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_adc_file(tmp_path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        json.dumps({"id": "n1", "text": "Hypertension on lisinopril 10 mg daily. Denies chest pain."})
        + "\n"
        + json.dumps({"id": "n2", "text": "Type 2 diabetes, A1c 8.1. Started metformin."})
        + "\n"
    )
    endpoint = f'{{ base_url = "{local_http.url_for("/")}", api_version = "v1" }}'
    config = tmp_path / "eval.toml"
    config.write_text(
        f'notes = "{notes}"\nmetrics = ["length", "judge"]\n\n'
        '[[providers]]\nspec = "anthropic:claude-sonnet-5-5"\n\n'
        f'[[providers]]\nspec = "vertex:gemini-2.5-flash"\noptions = {endpoint}\n\n'
        '[judge]\njudges = ["anthropic:claude-haiku-4-5", "vertex:gemini-2.5-pro"]\n'
        f'provider_options = {{ "vertex:gemini-2.5-pro" = {endpoint} }}\n'
    )
    db = tmp_path / "run.db"
    result = CliRunner().invoke(app, ["run", str(config), "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    store = Store.open(str(db))
    run_id = store.latest_run_id()
    summaries = {(s.system, s.note_id): s for s in store.summaries(run_id)}
    assert len(summaries) == 4 and all(s.ok for s in summaries.values())
    claude = summaries[("anthropic:claude-sonnet-5-5", "n1")]
    assert claude.text == "Hypertension on lisinopril; no chest pain."
    assert claude.usage.cost_usd == pytest.approx((400 * 2.0 + 60 * 10.0) / 1e6)
    assert claude.request_id == "req_e2e" and claude.latency_s is not None
    gemini = summaries[("vertex:gemini-2.5-flash", "n2")]
    assert gemini.usage.cost_usd == pytest.approx((400 * 0.30 + 50 * 2.50) / 1e6)
    assert gemini.request_id == "vNq4aPq2IZiW7dcP0ci4oAQ"

    judged = [s for s in store.scores(run_id) if s.evaluator.startswith("judge")]
    assert judged, "the judge produced no scores"
    assert {s.system for s in judged} == {"anthropic:claude-sonnet-5-5", "vertex:gemini-2.5-flash"}
